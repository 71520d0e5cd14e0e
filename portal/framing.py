"""Who may frame the portal: the origins in WEBHOOKHUB_PORTAL_FRAME_ANCESTORS (a CSP
`frame-ancestors`), nobody otherwise.

X-Frame-Options DENY is global (XFrameOptionsMiddleware); a portal page framed by an
allowed origin must not carry it, since browsers that see both obey the stricter one.
"""

import functools

from django.conf import settings


def frame_policy(response):
    origins = [o for o in settings.WEBHOOKHUB_PORTAL_FRAME_ANCESTORS if o.strip()]
    if origins:
        response["Content-Security-Policy"] = "frame-ancestors " + " ".join(origins)
        response.xframe_options_exempt = True
    else:
        response["Content-Security-Policy"] = "frame-ancestors 'none'"
    return response


def portal_framing(view):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        return frame_policy(response)

    return wrapper

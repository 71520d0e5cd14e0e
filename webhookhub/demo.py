"""A receiver for the demo endpoints `seed_demo` creates (mounted only when DEBUG).

`/demo/hooks/ok` answers 200, `/demo/hooks/flaky` fails about half of the requests, so
a first look at the admin shows successes, retries and failures side by side.
"""

import random

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


@csrf_exempt
@require_POST
def demo_receiver(request, behaviour: str):
    if behaviour == "flaky" and random.random() < 0.5:
        return JsonResponse({"error": "demo receiver failed on purpose"}, status=503)
    return HttpResponse(status=204)

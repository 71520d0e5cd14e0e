"""Model factories. Endpoints are created through the service, as every surface does."""

import factory

from endpoints.models import Partner


class PartnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Partner
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Partner {n}")
    contact_email = factory.LazyAttribute(
        lambda p: f"ops@{p.name.lower().replace(' ', '')}.example"
    )


def make_endpoint(partner=None, *, url="http://127.0.0.1:9/hook", event_types=("*",), **fields):
    from endpoints.services import endpoint_create

    partner = partner or PartnerFactory()
    fields.setdefault("name", f"{partner.name} endpoint")
    return endpoint_create(partner, url=url, event_types=event_types, by="test", **fields)

"""The REST API's shared machinery (SPEC §7): bearer-token authentication, roles,
partner scoping, cursor pagination, throttling, the error shape and the schema.

Resources live with their apps (`endpoints/api/`, `events/api/`, `deliveries/api/`);
`webhookhub/api/urls.py` routes them under `/api/v1/`.
"""

"""The GraphQL API: graphene schema split by domain, API-key principals, limits, the ASGI app."""

"""GraphQL types, one module per domain: talents, merchants, agencies, the market."""

"""The graph: domain model, the GraphStore protocol, stores and projections."""

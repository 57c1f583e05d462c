"""kolmatch: a graph-based KOL and talent-matrix matching engine for interest e-commerce."""

__version__ = "0.1.0"

"""Matching: signals, centrality, scoring over arrays — never a store or a driver."""

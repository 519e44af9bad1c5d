"""Scoring: Fréchet distance and friends over features, the domain classifier, the Inception protocol."""

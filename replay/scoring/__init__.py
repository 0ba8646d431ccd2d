"""Scoring a replay against ground truth: GOSPA, alert and track metrics, the report."""

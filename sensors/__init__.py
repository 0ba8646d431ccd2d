"""Simulated ground truth and drone, satellite and ground sensor feeds."""

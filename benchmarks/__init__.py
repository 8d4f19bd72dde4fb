"""Speed and memory measurements.

Run each as ``python -m benchmarks.NAME`` from the repository root.
"""

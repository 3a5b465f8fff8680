"""The order bounded context: intake rules, the order lifecycle, and the worker that keeps the order table."""

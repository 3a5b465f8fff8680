"""The order bounded context's rules: what may be ordered (menu), intake, the door new orders come in by
(admission), an order's lifecycle and its saga's deadlines. The order worker and the edge that run them are in
agents/runtime/order.py and api/order.py."""

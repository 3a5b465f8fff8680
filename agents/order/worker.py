"""The order worker: keeps each order's lifecycle state in the `orders` table."""
from agents.order.lifecycle import apply_event
from agents.worker import Worker

worker = Worker("order", service="order-worker")
orders = worker.table()
worker.fold_into(orders, apply_event)

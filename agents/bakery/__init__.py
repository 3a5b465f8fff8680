"""The bakery: a ticket per paid order, confirmed by the baker (or at once with BAKERY_AUTO_CONFIRM)."""

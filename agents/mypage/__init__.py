"""Mypage: the customer's read model (CQRS), every event about an order folded into one row."""

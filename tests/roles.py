"""Who may do what, as the README's roles table says: one row per route and method, the roles allowed. The
unit tests hold the access table to it, the in-process and end-to-end tests the running gateway."""
from agents.principals import ADMIN, BAKER, CUSTOMER, SERVICE

EXPECTED = {
    ("POST", "/orders"): {CUSTOMER, SERVICE, ADMIN},
    ("GET", "/orders/1"): {CUSTOMER, SERVICE, ADMIN},
    ("DELETE", "/orders/1"): {CUSTOMER, SERVICE, ADMIN},
    ("GET", "/order-requests/r1"): {CUSTOMER, SERVICE, ADMIN},
    ("GET", "/menu"): {CUSTOMER, BAKER, SERVICE, ADMIN},
    ("GET", "/mypages"): {CUSTOMER, SERVICE, ADMIN},
    ("GET", "/mypages/1"): {CUSTOMER, SERVICE, ADMIN},
    ("GET", "/bakeries/1"): {BAKER, SERVICE, ADMIN},
    ("POST", "/bakeries"): {BAKER, ADMIN},
    ("GET", "/payments/1"): {SERVICE, ADMIN},
    ("POST", "/payments"): {SERVICE, ADMIN},
    ("GET", "/sagas"): {SERVICE, ADMIN},
    ("GET", "/dead-letters"): {SERVICE, ADMIN},
    ("POST", "/dead-letters/1/replay"): {ADMIN},
}

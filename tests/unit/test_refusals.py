"""A refusal by a context's rules is answered the same by every face: one table (api/http.py) gives its status."""
import pytest

from agents.bakery.tickets import DecisionRefused
from agents.pay.payments import PaymentRefused
from api.http import REFUSALS, refusal


def kinds(root: type) -> list[type]:
    found = [root]
    for sub in root.__subclasses__():
        found += kinds(sub)
    return found


@pytest.mark.parametrize("kind", kinds(DecisionRefused) + kinds(PaymentRefused), ids=lambda kind: kind.__name__)
def test_every_kind_of_refusal_has_its_own_answer(kind):
    assert kind in dict(REFUSALS), f"{kind.__name__} would be answered as its parent: give it its status"
    answer = refusal(kind("the reason"))
    assert answer.http_status == dict(REFUSALS)[kind] and answer.body == {"error": "the reason"}


def test_the_most_particular_kind_is_looked_up_first():
    order = [kind for kind, _ in REFUSALS]
    assert all(order.index(kind) < order.index(parent) for kind in order for parent in kind.__mro__[1:]
               if parent in order)

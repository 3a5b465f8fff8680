"""A refusal by a context's rules is answered the same by every face: one table (api/http.py) gives its status."""
import pytest

from agents.bakery.tickets import DecisionRefused
from agents.deadletters import BadLetterQuery
from agents.idempotency import InvalidKey
from agents.order.menu import InvalidOrder
from agents.order.sagas import BadSagaQuery
from agents.pay.payments import PaymentRefused
from agents.refusal import Refusal
from api.http import REFUSALS, refusal

# The kinds that say a request is malformed: answered 400, as any refusal is unless the table says otherwise.
REQUESTS_TO_CORRECT = {DecisionRefused, PaymentRefused, InvalidOrder, InvalidKey, BadSagaQuery, BadLetterQuery}


def kinds(root: type) -> list[type]:
    found = [root]
    for sub in root.__subclasses__():
        found += kinds(sub)
    return found


@pytest.mark.parametrize("kind", kinds(Refusal)[1:], ids=lambda kind: kind.__name__)
def test_every_kind_of_refusal_has_its_own_answer(kind):
    answer = refusal(kind("the reason", orderId=7))
    if kind in REQUESTS_TO_CORRECT:
        assert answer.http_status == 400
    else:
        assert kind in dict(REFUSALS), f"{kind.__name__} would be answered as its parent: give it its status"
        assert answer.http_status == dict(REFUSALS)[kind]
    assert answer.body == {"error": "the reason", "orderId": 7}  # the reason, and the facts the refusal carries


def test_the_most_particular_kind_is_looked_up_first():
    order = [kind for kind, _ in REFUSALS]
    assert all(order.index(kind) < order.index(parent) for kind in order for parent in kind.__mro__[1:]
               if parent in order)

"""The per-rule activations metric counts an episode once, also when it was held first."""

from edge_agent.rules import AlarmEvent
from edge_agent.service.rules_loop import count_activation


def test_a_release_is_not_a_second_activation() -> None:
    activations: dict[str, int] = {}
    held = AlarmEvent(1, "activated", rule_id="r", alert_id="a", held="shelved")
    released = AlarmEvent(2, "activated", rule_id="r", alert_id="a", released="shelved")
    count_activation(activations, held)
    count_activation(activations, released)
    count_activation(activations, AlarmEvent(3, "cleared", rule_id="r", alert_id="a"))
    assert activations == {"r": 1}
    count_activation(activations, AlarmEvent(4, "activated", rule_id="r", alert_id="b"))
    assert activations == {"r": 2}

"""The local broker's generated settings."""
import base64

from ops.localkafka import LocalKafka, new_cluster_id


def test_a_cluster_id_is_16_bytes_that_never_look_like_an_option():
    for _ in range(2000):
        cluster_id = new_cluster_id()
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_a_single_node_broker_is_configured_for_one_replica(tmp_path):
    props = dict(line.split("=", 1) for line in LocalKafka(port=1, controller_port=2, data=tmp_path, heap="512m")
                 .properties().splitlines() if line)
    assert props["process.roles"] == "broker,controller"
    assert props["transaction.state.log.replication.factor"] == props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["auto.create.topics.enable"] == "false"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2"

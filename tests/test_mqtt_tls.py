"""TLS with a client certificate, passwords from credentials or the environment, and bad secrets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from broker import PASSWORD, USERNAME
from broker_fixtures import WAIT, event_result, sink_config, wait_until

from rpi_agent.errors import ConfigError
from rpi_agent.sinks.mqtt import MqttSink

LOGGER = "rpi_agent.sinks"


def _tls_config(broker, *, ca: Path | None = None, **changes):
    certs = broker.certs
    return sink_config(broker, port=broker.tls_port, username=USERNAME, password_env="FACEAGENT_TEST_PW",
                       tls_ca_certs=ca or certs.ca, tls_client_cert=certs.client_cert,
                       tls_client_key=certs.client_key, **changes)


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith(LOGGER)]


def test_tls_with_client_certificate_and_password_from_credentials(broker, recorder, make_sink, monkeypatch,
                                                                   caplog):
    creds = broker.workdir / "credentials"
    creds.mkdir()
    (creds / "mqtt-password").write_text(PASSWORD + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    rec = recorder(["faceagent/events"])
    with caplog.at_level(logging.DEBUG):
        sink = make_sink(_tls_config(broker, password_credential="mqtt-password"))
        assert sink.wait_connected(WAIT), broker.log_tail()
        sink.publish(event_result())
        assert rec.wait_for(lambda: len(rec.on("faceagent/events")) == 1)
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(sink.config)


def test_password_listener_with_password_from_the_environment(broker, make_sink, monkeypatch):
    monkeypatch.setenv("FACEAGENT_TEST_PW", PASSWORD)
    sink = make_sink(sink_config(broker, port=broker.auth_port, username=USERNAME, password_env="FACEAGENT_TEST_PW"))
    assert sink.wait_connected(WAIT)


def test_wrong_password_is_one_clear_line_and_retries(broker, make_sink, monkeypatch, caplog):
    monkeypatch.setenv("FACEAGENT_TEST_PW", "not the password")
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        sink = make_sink(sink_config(broker, port=broker.auth_port, username=USERNAME,
                                     password_env="FACEAGENT_TEST_PW"))
        assert wait_until(lambda: broker.log_tail(200).count("not authorised") >= 3, WAIT), broker.log_tail()
    errors = _errors(caplog)
    assert len(errors) == 1, errors
    assert "refused the connection" in errors[0] and "check mqtt.username" in errors[0]
    assert "not the password" not in caplog.text
    assert not sink.connected and sink.running


def test_wrong_ca_is_one_clear_line_and_retries(broker, make_sink, monkeypatch, caplog):
    monkeypatch.setenv("FACEAGENT_TEST_PW", PASSWORD)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        sink = make_sink(_tls_config(broker, ca=broker.certs.other_ca))
        assert wait_until(lambda: sum("retrying in" in r.getMessage() for r in caplog.records) >= 2, WAIT)
    errors = _errors(caplog)
    assert len(errors) == 1, errors
    assert "certificate" in errors[0] and "mqtt.tls_ca_certs" in errors[0]
    assert not sink.connected and sink.running


def test_missing_or_bad_tls_files_are_config_errors(broker, tmp_path):
    def build(config):
        return MqttSink(config, cameras=["door"], outbox_dir=tmp_path, on_command=lambda *a: None, sw_version="t")

    with pytest.raises(ConfigError, match=r"^mqtt\.tls_ca_certs: .*missing\.crt: No such file"):
        build(_tls_config(broker, ca=tmp_path / "missing.crt"))
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"^mqtt\.tls_ca_certs: cannot load the TLS files"):
        build(_tls_config(broker, ca=garbage))


def test_events_the_broker_refuses_are_set_aside_counted_and_logged_once(broker, make_sink, monkeypatch, caplog):
    monkeypatch.setenv("FACEAGENT_TEST_PW", PASSWORD)
    config = sink_config(broker, port=broker.auth_port, username=USERNAME, password_env="FACEAGENT_TEST_PW",
                         topic_prefix="forbidden")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        sink = make_sink(config)
        assert sink.wait_connected(WAIT)
        for _ in range(5):
            sink.publish(event_result())
        assert wait_until(lambda: sink.stats()["refused"] == 5 and len(sink.outbox) == 0, WAIT)
    refusals = [r.getMessage() for r in caplog.records if "set aside: the broker refused it" in r.getMessage()]
    assert len(refusals) == 1 and "Not authorized" in refusals[0]

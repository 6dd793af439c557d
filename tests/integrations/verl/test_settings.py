"""The `depo:` block of the verl config: typed, defaults from the shipped YAML, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

# "verl.protocol", not "verl": in a full run tests/integrations is on sys.path, where this
# folder is a namespace package named verl.
pytest.importorskip("verl.protocol")

from omegaconf import OmegaConf  # noqa: E402

from depo.errors import DepoError  # noqa: E402
from depo.integrations.verl.settings import DepoSettings  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[3] / "src/depo/integrations/verl/config/depo_trainer.yaml"


def test_the_shipped_block_is_the_defaults_and_nulls_mean_none():
    node = OmegaConf.load(SHIPPED).depo
    assert DepoSettings.from_config(node) == DepoSettings() == DepoSettings.from_config(None)
    node.options, node.estimator.config = None, None  # `depo.options=null` on the command line
    assert DepoSettings.from_config(node) == DepoSettings()
    overridden = OmegaConf.merge(node, OmegaConf.from_dotlist(["selection=rank", "oversample=3", "estimator.device=ray"]))
    settings = DepoSettings.from_config(overridden)
    assert (settings.selection, settings.oversample, settings.estimator.device) == ("rank", 3.0, "ray")
    assert settings.max_scan(64) == 512 and settings.data_seed({"seed": 7}) == 7


@pytest.mark.parametrize(("block", "fragment"), [
    ({"selectr": "depo"}, "depo: unknown key 'selectr' (did you mean 'selector'?)"),
    ({"estimator": {"num_gpu": 1}}, "depo estimator: unknown key 'num_gpu' (did you mean 'num_gpus'?)"),
    ({"estimator": {"device": "gpu"}}, "depo estimator.device: "),
    ({"max_scan_factor": 0.5}, "depo max_scan_factor: "),
    ({"max_chunk": 0}, "depo max_chunk: "),
    ({"selection": "best"}, "depo selection: "),
    ({"oversample": 0.9}, "depo oversample: "),
    ({"estimator": {"num_cpus": -1}}, "depo estimator.num_cpus: "),
])
def test_a_bad_key_or_value_is_one_line_naming_it(block, fragment):
    with pytest.raises(DepoError) as err:
        DepoSettings.from_config(OmegaConf.create(block))
    assert str(err.value).startswith(fragment) and "\n" not in str(err.value)

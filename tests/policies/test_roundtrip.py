"""Save/load round trips with lerobot: our checkpoints load with lerobot's own code and re-save identically, and
the policy server (lerobot adapter, found through the ``rcs.lerobot_policies`` entry point) computes exactly
what lerobot's own pipeline computes. (lerobot's native checkpoints behind our server: tests/serving.)"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _raw_batch(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "observation.state": torch.rand(1, 15, generator=g),
        "observation.environment_state": torch.rand(1, 10, generator=g),
        "observation.images.front": torch.rand(1, 3, 32, 32, generator=g),
    }


def _lerobot_load(directory):
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    cfg = PreTrainedConfig.from_pretrained(str(directory))
    policy = get_policy_class(cfg.type).from_pretrained(str(directory), config=cfg)
    pre, post = make_pre_post_processors(cfg, pretrained_path=str(directory))
    return cfg, policy, pre, post


def _chunk(policy, pre, post, batch, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    with torch.no_grad():
        return post(policy.predict_action_chunk(pre(dict(batch))))


def test_entry_point_registers_the_policy_type_with_lerobot():
    from lerobot.configs.policies import PreTrainedConfig

    from rcs.registry import lerobot_policy_plugins

    lerobot_policy_plugins.factory("rcs_diffusion")
    assert "rcs_diffusion" in PreTrainedConfig.get_known_choices()


def test_lerobot_loads_our_checkpoint_and_resaves_it_identically(tiny_checkpoint, tmp_path):
    import policies.rcs_diffusion  # noqa: F401  (what the entry point imports)

    cfg, policy, pre, post = _lerobot_load(tiny_checkpoint)
    assert cfg.type == "rcs_diffusion" and type(policy).__name__ == "RcsDiffusionPolicy"
    batch = _raw_batch()
    first = _chunk(policy, pre, post, batch)
    assert first.shape == (1, cfg.horizon, 8) and torch.isfinite(first).all()
    for part in (policy, pre, post):
        part.save_pretrained(str(tmp_path))
    _, again, pre2, post2 = _lerobot_load(tmp_path)
    for (k, a), (k2, b) in zip(policy.state_dict().items(), again.state_dict().items(), strict=True):
        assert k == k2
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(_chunk(again, pre2, post2, batch), first, rtol=0, atol=0)
    # select_action executes the first n_action_steps of a chunk, then predicts again
    again.reset()
    torch.manual_seed(0)
    step = again.select_action(pre2(dict(batch)))
    assert step.shape == (1, 8)


def test_server_loader_computes_what_lerobot_computes(tiny_checkpoint):
    from rcs.serving.policy import load_policy

    served = load_policy(tiny_checkpoint)
    names = [s.name for s in served.schema.observation]
    assert sorted(names) == ["observation.environment_state", "observation.images.front", "observation.state"]
    assert served.schema.action.names == (*(f"joint{i}" for i in range(1, 8)), "gripper")
    assert served.schema.policy_dt == pytest.approx(0.05)
    batch = _raw_batch()
    image = (batch["observation.images.front"][0].permute(1, 2, 0) * 255).round().to(torch.uint8)
    wire = {
        "observation.state": batch["observation.state"][0].numpy(),
        "observation.environment_state": batch["observation.environment_state"][0].numpy(),
        "observation.images.front": image.numpy(),
    }
    torch.manual_seed(0)
    chunk = served.infer([wire])[0]
    _, policy, pre, post = _lerobot_load(tiny_checkpoint)
    batch["observation.images.front"] = image.permute(2, 0, 1)[None].float() / 255.0
    expected = _chunk(policy, pre, post, batch)[0].numpy()
    np.testing.assert_allclose(chunk, expected, rtol=1e-5, atol=1e-6)

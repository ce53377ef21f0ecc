"""One object per fine-tuning method: what the loop needs to know about LoRA or AdaLoRA.

The loop calls the same hooks for every method and never branches on a method's name:

* ``attach(model, sel, cfg, total_steps)`` -> the wrapped model;
* ``module_ranks()`` -> ``{module: rank}`` the optimizer's per-module learning rates use;
* ``planned_params()`` -> the parameter count promised before training;
* ``extra_loss(model)`` -> a term added on the step's last micro-batch, or None;
* ``after_step(model, step)`` -> called after each optimizer step;
* ``realised(model, layout)`` -> the :class:`~adaptive_lora.strategies.Plan` the trained model holds;
* ``state(model)`` / ``load_state(model, state)`` -> what a mid-run checkpoint must keep besides
  the trainable weights and the optimizer (tensors, numbers, strings, lists and dicts only).

A new method (e.g. DoRA, or a dynamic rank schedule) is a class here plus a line in
:data:`METHODS`. No torch at import time: the config validates ``method`` against this registry.
"""

from __future__ import annotations


def upcast_trainable(model):
    """Adapters (and so their gradients and Adam states) in fp32 whatever the base's dtype: PEFT
    creates LoRA weights in the base layer's dtype, and bf16 updates of 3e-4 x a weight round away.
    Every method's ``attach`` ends here, so runs and training probes alike get fp32 adapters."""
    import torch

    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    return model


class LoraMethod:
    """Plain LoRA with a static plan, wrapped through the one LoraConfig builder and audited."""

    name = "lora"
    needs_plan = True  # the rank plan comes from a strategy (or plan_file) before training

    def __init__(self, plan, policy, dropout: float):
        self.plan, self.policy, self.dropout = plan, policy, dropout

    @classmethod
    def from_config(cls, cfg, plan) -> "LoraMethod":
        from ..adapters import AlphaPolicy

        lora = cfg.lora
        return cls(plan, AlphaPolicy(lora.alpha_policy, lora.lora_alpha, lora.alpha_ratio), lora.lora_dropout)

    def attach(self, model, sel, cfg, total_steps: int):
        from ..adapters import wrap_model

        return upcast_trainable(wrap_model(model, self.plan, self.policy, self.dropout))  # audited

    def module_ranks(self) -> dict:
        return self.plan.adapted

    def planned_params(self) -> int:
        return self.plan.trainable_params

    def extra_loss(self, model):
        return None

    def after_step(self, model, step: int) -> None:
        pass

    def state(self, model) -> dict:
        return {}  # a static plan: the weights and the optimizer are the whole state

    def load_state(self, model, state: dict) -> None:
        pass

    def realised(self, model, layout):
        """The plan, after the audit has checked every module's rank and scaling once more."""
        from ..adapters import audit_model

        audit_model(model, self.plan, self.policy)
        return self.plan


class AdaLoraMethod:
    """PEFT's AdaLoRA: every module starts at ``adalora_init_r`` and is pruned during training."""

    name = "adalora"
    needs_plan = False  # AdaLoRA sets its ranks during training

    def __init__(self):
        self.sel = None
        self.init_r = None

    @classmethod
    def from_config(cls, cfg, plan) -> "AdaLoraMethod":
        return cls()

    def attach(self, model, sel, cfg, total_steps: int):
        from peft import get_peft_model

        from .adalora import adalora_config

        self.sel, self.init_r = sel, cfg.adalora.adalora_init_r
        return upcast_trainable(get_peft_model(model, adalora_config(cfg, sel, total_steps)))

    def module_ranks(self) -> dict:
        return {m.name: self.init_r for m in self.sel.modules}

    def planned_params(self) -> int:
        return sum(m.lora_params(self.init_r) for m in self.sel.modules)

    def extra_loss(self, model):
        from .adalora import orth_regularizer

        return model.peft_config["default"].orth_reg_weight * orth_regularizer(model)

    def after_step(self, model, step: int) -> None:
        model.base_model.update_and_allocate(step)

    def state(self, model) -> dict:
        """The rank allocator's importance averages and the budget it has set so far: without
        them a resumed run would prune other singular values than an uninterrupted one."""
        alloc = model.base_model.rankallocator
        return {"ipt": dict(alloc.ipt), "exp_avg_ipt": dict(alloc.exp_avg_ipt), "exp_avg_unc": dict(alloc.exp_avg_unc),
                "rank_pattern": model.peft_config["default"].rank_pattern}

    def load_state(self, model, state: dict) -> None:
        alloc = model.base_model.rankallocator
        # The allocator names parameters as the wrapped model inside PEFT's tuner does; a
        # checkpoint loads onto the CPU, so each tensor goes back to its parameter's device.
        device = {n: p.device for n, p in model.base_model.model.named_parameters()}
        alloc.ipt, alloc.exp_avg_ipt, alloc.exp_avg_unc = ({n: t.to(device[n]) for n, t in state[k].items()}
                                                           for k in ("ipt", "exp_avg_ipt", "exp_avg_unc"))
        model.peft_config["default"].rank_pattern = state["rank_pattern"]

    def realised_ranks(self, model, sel) -> dict:
        from .adalora import realised_adalora_ranks

        return realised_adalora_ranks(model, sel)

    def realised(self, model, layout):
        """Ranks read from the non-zero singular values of each module, as a plan."""
        from ..strategies import Plan, StrategyParams

        ranks = self.realised_ranks(model, self.sel)
        return Plan("adalora", self.sel, {m.name: ranks.get(m.name, 0) for m in self.sel.modules}, StrategyParams())


METHODS = {"lora": LoraMethod, "adalora": AdaLoraMethod}

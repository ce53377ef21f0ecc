"""One object per fine-tuning method: what the loop needs to know about LoRA or AdaLoRA.

The loop calls the same hooks for every method and never branches on a method's name:

* ``attach(model, sel, cfg, total_steps)`` -> the wrapped model;
* ``module_ranks()`` -> ``{module: rank}`` the optimizer's per-module learning rates use;
* ``planned_params()`` -> the parameter count promised before training;
* ``extra_loss(model)`` -> a term added on the step's last micro-batch, or None;
* ``after_step(model, step, optimizer)`` -> called after each optimizer step, before the gradients
  are cleared; returns a dict to add to the step's log row (e.g. ranks that moved), or None;
* ``realised(model, layout)`` -> the :class:`~adaptive_lora.strategies.Plan` the trained model holds;
* ``initialise(model, session, data)`` -> after ``attach``, before the step-0 eval: a data-driven
  initialisation of the adapters (GoRA's), or nothing; returns what it cost, or None;
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

    def __init__(self, plan, policy, dropout: float, init=None):
        self.plan, self.policy, self.dropout = plan, policy, dropout
        self.init = init  # (gamma, probe batches) of GoRA's initialisation, or None

    @classmethod
    def from_config(cls, cfg, plan) -> "LoraMethod":
        from ..adapters import AlphaPolicy

        lora = cfg.lora
        init = None
        if lora.gora_init:
            init = (lora.gora_init_gamma, cfg)
        return cls(plan, AlphaPolicy(lora.alpha_policy, lora.lora_alpha, lora.alpha_ratio), lora.lora_dropout, init)

    def attach(self, model, sel, cfg, total_steps: int):
        from ..adapters import wrap_model

        return upcast_trainable(wrap_model(model, self.plan, self.policy, self.dropout))  # audited

    def initialise(self, model, session, data):
        """GoRA's gradient-compressing initialisation of B when ``gora_init`` is on."""
        if self.init is None:
            return None
        from .gora_init import gora_initialise
        from .prepare import gradient_probe_batches

        gamma, cfg = self.init
        return gora_initialise(model, session, data, gradient_probe_batches(cfg, len(data.train)), gamma)

    def module_ranks(self) -> dict:
        return self.plan.adapted

    def planned_params(self) -> int:
        return self.plan.trainable_params

    def extra_loss(self, model):
        return None

    def after_step(self, model, step: int, optimizer=None):
        return None  # a static plan: nothing changes during training

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
    """PEFT's AdaLoRA: every module starts at adalora_init_r and is pruned during training."""

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

    def initialise(self, model, session, data):
        return None  # AdaLoRA's SVD-shaped adapters have their own initialisation

    def extra_loss(self, model):
        from .adalora import orth_regularizer

        return model.peft_config["default"].orth_reg_weight * orth_regularizer(model)

    def after_step(self, model, step: int, optimizer=None):
        model.base_model.update_and_allocate(step)
        return None

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


class PruneExpandMethod(LoraMethod):
    """Dynamic: LoRA whose ranks move from the least to the most important modules during
    training, at the plan's budget (after ElaLoRA; training/prune_expand.py)."""

    name = "prune_expand"

    def __init__(self, plan, policy, dropout: float, settings, r_max: int, seed: int, r_min: int):
        super().__init__(plan, policy, dropout)
        self.settings, self.r_max, self.seed, self.r_min = settings, r_max, seed, r_min
        self.mover = None

    @classmethod
    def from_config(cls, cfg, plan) -> "PruneExpandMethod":
        from ..adapters import AlphaPolicy
        from ..errors import UserError

        lora = cfg.lora
        if lora.alpha_policy != "proportional":
            raise UserError("method prune_expand needs alpha_policy: proportional (the scaling alpha/r must not "
                            "change when a module's rank does)")
        return cls(plan, AlphaPolicy(lora.alpha_policy, lora.lora_alpha, lora.alpha_ratio), lora.lora_dropout,
                   cfg.prune_expand, cfg.params.r_max, cfg.optim.seed, cfg.params.r_min)

    def attach(self, model, sel, cfg, total_steps: int):
        import dataclasses

        from ..adapters import wrap_model
        from .prune_expand import RankMover, Schedule, build_slots, capacity

        by = self.plan.layout.by_name()
        caps = {n: capacity(r, self.settings.pe_capacity, by[n].max_rank, max(self.r_max, r))
                for n, r in self.plan.adapted.items()}
        # PEFT builds every adapter at its capacity (audited against this plan); the components
        # past the planned rank are then zeroed, so the model starts as a LoRA of the plan.
        at_capacity = dataclasses.replace(self.plan, ranks={**self.plan.ranks, **caps}, budget_target=None)
        model = upcast_trainable(wrap_model(model, at_capacity, self.policy, self.dropout))
        slots = build_slots(model, self.plan, caps)
        s = self.settings
        self.mover = RankMover(slots, Schedule.of(s, total_steps), s.pe_moves, s.pe_beta, self.r_min, self.seed)
        return model

    def after_step(self, model, step: int, optimizer=None):
        return self.mover.step(step, optimizer)

    def state(self, model) -> dict:
        """Which components are active, their importance and age, and the unspent credit: the
        weights and Adam moments alone do not say which zero component is pruned."""
        return {"credit": self.mover.credit,
                "slots": {s.name: {"active": s.active.clone(), "score": s.score.clone(),
                                   "born": {str(i): t for i, t in (s.born or {}).items()}}
                          for s in self.mover.slots}}

    def load_state(self, model, state: dict) -> None:
        self.mover.credit = state["credit"]
        for s in self.mover.slots:
            saved = state["slots"][s.name]
            s.active, s.score = saved["active"].clone(), saved["score"].clone()
            s.born = {int(i): t for i, t in saved["born"].items()}

    def realised(self, model, layout):
        """The active ranks at the end, as a plan (the audit of the capacities ran at attach)."""
        import dataclasses

        note = (f"prune_expand: ranks moved during training; {self.mover.credit} planned parameters unspent "
                "at the end")
        return dataclasses.replace(self.plan, ranks={**self.plan.ranks, **self.mover.ranks()},
                                   notes=tuple(self.plan.notes) + (note,))


METHODS = {"lora": LoraMethod, "adalora": AdaLoraMethod, "prune_expand": PruneExpandMethod}

"""Load balancer traffic between the primary and canary target groups: finding the listener rules, rewriting
their weights, and telling whether a target group still gets traffic.

The rules considered are every listener rule (default rules included) of every load balancer the primary
target group belongs to. A rule "forwards to both" when one of its forward actions lists both target
groups; only those rules are rewritten. A default rule is changed with ModifyListener, any other with
ModifyRule. Weights are whole numbers; a target group's share of a rule is its weight over the sum of the
rule's weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .provider import short_name


def _label_conditions(conditions: list[dict]) -> str:
    parts = []
    for condition in conditions or []:
        name = condition.get("Field", "")
        values = condition.get("Values") or []
        for key in ("PathPatternConfig", "HostHeaderConfig", "HttpRequestMethodConfig", "SourceIpConfig"):
            values = values or (condition.get(key) or {}).get("Values") or []
        parts.append(f"{name} {','.join(values)}".strip())
    return f" ({'; '.join(parts)})" if parts else ""


def forward_weights(action: dict) -> dict[str, int]:
    """{target group ARN: weight} of a forward action; a plain TargetGroupArn forward weighs 1 of 1."""
    if action.get("Type") != "forward":
        return {}
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
    if groups:
        return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups if g.get("TargetGroupArn")}
    if action.get("TargetGroupArn"):
        return {action["TargetGroupArn"]: 1}
    return {}


@dataclass
class Rule:
    listener_arn: str
    listener: str  # "HTTP:80"
    arn: str
    is_default: bool
    priority: str
    conditions: list = field(default_factory=list)
    actions: list = field(default_factory=list)

    @property
    def label(self) -> str:
        where = (
            "default rule" if self.is_default else f"rule {self.priority}{_label_conditions(self.conditions)}"
        )
        return f"listener {self.listener}, {where}"

    @property
    def weights(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for action in self.actions:
            merged.update(forward_weights(action))
        return merged

    def forwards_to(self, *target_groups: str) -> bool:
        """Whether one forward action of the rule lists every one of `target_groups`."""
        return any(all(tg in forward_weights(a) for tg in target_groups) for a in self.actions)

    def share(self, target_group: str) -> float:
        """The percentage of this rule's traffic that goes to `target_group`."""
        weights = self.weights
        total = sum(weights.values())
        return 100.0 * weights.get(target_group, 0) / total if total else 0.0

    def as_dict(self, names: dict[str, str]) -> dict:
        weights = self.weights
        total = sum(weights.values())
        return {
            "listener": self.listener,
            "rule": "default" if self.is_default else self.priority,
            "label": self.label,
            "weights": [
                {
                    "target_group": names.get(tg) or short_name(tg),
                    "arn": tg,
                    "weight": weight,
                    "percent": round(100.0 * weight / total, 1) if total else 0.0,
                }
                for tg, weight in weights.items()
            ],
        }


def reweighted_actions(actions: list[dict], weights: dict[str, int]) -> list[dict]:
    """The rule's actions with the forward action's target group weights set from `weights`.

    Other target groups of the same action keep their weights; the action's plain `TargetGroupArn` is
    dropped (the weighted ForwardConfig replaces it). An OIDC authentication action described without its
    secret keeps the one AWS has.
    """
    out = []
    for action in actions:
        action = copy.deepcopy(action)
        if forward_weights(action) and all(tg in forward_weights(action) for tg in weights):
            action.pop("TargetGroupArn", None)
            config = action.setdefault("ForwardConfig", {})
            for group in config.get("TargetGroups") or []:
                if group.get("TargetGroupArn") in weights:
                    group["Weight"] = int(weights[group["TargetGroupArn"]])
        oidc = action.get("AuthenticateOidcConfig")
        if oidc is not None and not oidc.get("ClientSecret"):
            oidc["UseExistingClientSecret"] = True
        out.append(action)
    return out


class LoadBalancing:
    """What one step knows about load balancers: target groups, listeners and rules, read once and cached."""

    def __init__(self, provider):
        self.provider = provider
        self._groups: dict[str, dict | None] = {}
        self._rules: dict[str, list[Rule]] = {}

    def target_group(self, arn: str) -> dict | None:
        if arn not in self._groups:
            found = self.provider.target_groups([arn])
            self._groups[arn] = found[0] if found else None
        return self._groups[arn]

    def name(self, arn: str) -> str:
        group = self.target_group(arn) if arn else None
        return (group or {}).get("TargetGroupName") or short_name(arn)

    def load_balancers(self, target_groups: list[str]) -> list[str]:
        found: dict[str, None] = {}
        for arn in target_groups:
            group = self.target_group(arn) if arn else None
            found.update(dict.fromkeys((group or {}).get("LoadBalancerArns") or []))
        return list(found)

    def rules_of(self, load_balancer: str) -> list[Rule]:
        if load_balancer not in self._rules:
            rules = []
            for listener in self.provider.listeners(load_balancer):
                label = f"{listener.get('Protocol', '')}:{listener.get('Port', '')}"
                for rule in self.provider.rules(listener["ListenerArn"]):
                    rules.append(
                        Rule(
                            listener_arn=listener["ListenerArn"],
                            listener=label,
                            arn=rule["RuleArn"],
                            is_default=bool(rule.get("IsDefault")),
                            priority=str(rule.get("Priority", "")),
                            conditions=rule.get("Conditions") or [],
                            actions=rule.get("Actions") or [],
                        )
                    )
            self._rules[load_balancer] = rules
        return self._rules[load_balancer]

    def rules_for(self, target_groups: list[str]) -> list[Rule]:
        """Every rule of every load balancer the given target groups belong to."""
        rules = []
        for load_balancer in self.load_balancers(target_groups):
            rules.extend(self.rules_of(load_balancer))
        return rules

    def rules_of_listeners(self, listener_arns: list[str]) -> list[Rule]:
        rules = []
        for arn in dict.fromkeys(listener_arns):
            known = [r for rules_ in self._rules.values() for r in rules_ if r.listener_arn == arn]
            if known:
                rules.extend(known)
                continue
            for rule in self.provider.rules(arn):
                rules.append(
                    Rule(
                        listener_arn=arn,
                        listener=short_name(arn),
                        arn=rule["RuleArn"],
                        is_default=bool(rule.get("IsDefault")),
                        priority=str(rule.get("Priority", "")),
                        conditions=rule.get("Conditions") or [],
                        actions=rule.get("Actions") or [],
                    )
                )
        return rules

    def set_weights(self, rule: Rule, weights: dict[str, int]) -> None:
        actions = reweighted_actions(rule.actions, weights)
        if rule.is_default:
            self.provider.set_listener_default_actions(rule.listener_arn, actions)
        else:
            self.provider.set_rule_actions(rule.arn, actions)
        rule.actions = actions

    def traffic_to(self, target_group: str) -> tuple[float, Rule | None]:
        """The largest share of any rule's traffic that `target_group` gets, and that rule."""
        best, where = 0.0, None
        for rule in self.rules_for([target_group]):
            share = rule.share(target_group)
            if share > best:
                best, where = share, rule
        return best, where


def route(
    lb: LoadBalancing, rules: list[Rule], primary: str, canary: str, weights: tuple[int, int], log
) -> list[str]:
    """Set (primary, canary) weights on every rule forwarding to both; answers a line per rule for the log."""
    lines = []
    wanted = {primary: int(weights[0]), canary: int(weights[1])}
    for rule in rules:
        if not rule.forwards_to(primary, canary):
            continue
        before = rule.weights
        old = (before.get(primary, 0), before.get(canary, 0))
        if old == weights:
            lines.append(f"{rule.label}: already primary {old[0]}, canary {old[1]}")
            continue
        lb.set_weights(rule, wanted)
        lines.append(f"{rule.label}: primary {old[0]} → {weights[0]}, canary {old[1]} → {weights[1]}")
    for line in lines:
        log(line)
    return lines


def unsafe_to_delete(lb: LoadBalancing, task_set: dict, keep: list[dict]) -> str | None:
    """Why deleting `task_set` would cut traffic (its target group gets traffic and no kept task set
    serves it), or None when it is safe."""
    served = {entry.get("targetGroupArn") for other in keep for entry in other.get("loadBalancers") or []}
    for entry in task_set.get("loadBalancers") or []:
        target_group = entry.get("targetGroupArn")
        if not target_group or target_group in served:
            continue
        share, rule = lb.traffic_to(target_group)
        if share > 0 and rule is not None:
            return (
                f"its target group {lb.name(target_group)} still gets {share:g} % of the traffic "
                f"({rule.label}) and no other task set serves it"
            )
    return None

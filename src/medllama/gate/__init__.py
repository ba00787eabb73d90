"""The gate: nobody calls a model before accepting its data-use agreement (see decide.py for the one decision)."""

from medllama.gate.decide import Allow, Deny, Gate

__all__ = ["Allow", "Deny", "Gate"]

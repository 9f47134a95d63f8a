"""The Evolution pane's strategy controls (run A's and run B's alike)."""
from __future__ import annotations

from PyQt5.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QLineEdit, QSpinBox

from wm_studio.core.es.demo import STRATEGIES, parse_mu


def strategy_box() -> QComboBox:
    box = QComboBox()
    for key, (_, label) in STRATEGIES.items():
        box.addItem(label, key)
    box.setToolTip("CMA-ES with a full C, the separable (diagonal C) variant, or restarts with a growing (IPOP) "
                   "or alternately large and small (BIPOP) population")
    return box


def popsize_spin() -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(0, 100000)
    spin.setSpecialValueText("default")
    spin.setToolTip("Population size λ; 'default' is 4 + ⌊3 ln n⌋")
    return spin


def sigma_spin() -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(4)
    spin.setRange(1e-4, 1e4)
    spin.setToolTip("Initial step size σ0. The Schaffer demo needs about 3 to escape the rings.")
    return spin


def seed_spin() -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(0, 2 ** 31 - 1)
    spin.setToolTip("Seed of the engine's random generator")
    return spin


class StrategyRows:
    """Variant, λ, μ (run A only), σ0 and seed as rows of a form: run A's strategy and run B's alike."""

    def __init__(self, form: QFormLayout, with_mu: bool):
        self.variant, self.popsize, self.sigma0, self.seed = strategy_box(), popsize_spin(), sigma_spin(), seed_spin()
        self.mu = QLineEdit() if with_mu else None
        rows = [("Variant", self.variant), ("λ (popsize)", self.popsize), ("μ (parents)", self.mu),
                ("σ0", self.sigma0), ("Seed", self.seed)]
        for label, widget in rows:
            if widget is not None:
                form.addRow(label, widget)
        if self.mu is not None:
            self.mu.setToolTip("Parents μ: a count (16) or a fraction of λ (0.25); empty: λ/2")

    @property
    def widgets(self) -> tuple:
        return tuple(w for w in (self.variant, self.popsize, self.mu, self.sigma0, self.seed) if w is not None)

    def values(self) -> dict:
        """The EsSettings fields these rows hold (ConfigError for a μ that is no count or fraction)."""
        values = {"strategy": self.variant.currentData(), "popsize": self.popsize.value() or None,
                  "sigma0": float(self.sigma0.value()), "seed": int(self.seed.value())}
        if self.mu is not None:
            values["mu"] = parse_mu(self.mu.text())
        return values

    def show(self, strategy: str, popsize: int | None, sigma0: float, seed: int | None, mu=None) -> None:
        self.variant.setCurrentIndex(max(0, self.variant.findData(strategy)))
        self.popsize.setValue(popsize or 0)
        self.sigma0.setValue(sigma0)
        self.seed.setValue(seed or 0)
        if self.mu is not None:
            self.mu.setText("" if mu is None else str(mu))

    def save(self, settings, prefix: str = "") -> None:
        """Into QSettings under the keys load_settings reads (strategy, popsize, sigma0, seed, mu)."""
        settings.setValue(f"{prefix}strategy", self.variant.currentData())
        settings.setValue(f"{prefix}popsize", self.popsize.value())
        settings.setValue(f"{prefix}sigma0", self.sigma0.value())
        settings.setValue(f"{prefix}seed", self.seed.value())
        if self.mu is not None:
            settings.setValue(f"{prefix}mu", self.mu.text())

"""A simulator of the Capital.com REST API: deterministic account history, sessions, limits, faults.

It is a product feature: with no credentials configured, every command runs against it, and any
Capital.com client can be pointed at `ledger-etl simulator serve`.
"""

from ledger_etl.simulator.app import Simulator
from ledger_etl.simulator.clock import Clock
from ledger_etl.simulator.config import SimulatorConfig, load_config_file
from ledger_etl.simulator.server import SimulatorServer
from ledger_etl.simulator.world import WorldConfig

__all__ = [
    "Clock",
    "Simulator",
    "SimulatorConfig",
    "SimulatorServer",
    "WorldConfig",
    "load_config_file",
]

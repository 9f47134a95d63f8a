"""CMA-ES: the engine, its separable variant, restarts, termination criteria and test problems."""
from wm_studio.core.es.cmaes import CMAES, EvaluationError, StrategyParameters, strategy_parameters
from wm_studio.core.es.problems import PROBLEMS, Problem, get_problem
from wm_studio.core.es.restarts import BIPOPCMAES, IPOPCMAES
from wm_studio.core.es.sep import SepCMAES
from wm_studio.core.es.termination import Termination

__all__ = ["CMAES", "SepCMAES", "IPOPCMAES", "BIPOPCMAES", "Termination", "EvaluationError", "StrategyParameters",
           "strategy_parameters", "Problem", "PROBLEMS", "get_problem"]

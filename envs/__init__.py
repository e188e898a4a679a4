"""earlyexp settings: the env contract, its checker, the registry and the built-in settings.

Importing this package registers the built-in ids (lazily: no setting module is imported
until its first ``make``).
"""

from envs.checker import ContractError, check_env
from envs.contract import SPLITS, TextEnv, text_space
from envs.registration import env_info, make, register, registered_ids, resolve_id

__all__ = [
    "SPLITS",
    "ContractError",
    "TextEnv",
    "check_env",
    "env_info",
    "make",
    "register",
    "registered_ids",
    "resolve_id",
    "text_space",
]

register(
    "earlyexp/Household-v0",
    "envs.household:HouseholdEnv",
    max_episode_steps=50,
    family="text game",
    description="ALFWorld-like household: six task types over receptacles and objects",
)
register(
    "earlyexp/Cooking-v0",
    "envs.textworld_games:TextWorldEnv",
    max_episode_steps=100,
    family="text game",
    description="TextWorld cooking games (First TextWorld Problems), generated and cached locally",
    kwargs={"challenge": "tw-cooking"},
)
register(
    "earlyexp/TreasureHunter-v0",
    "envs.textworld_games:TextWorldEnv",
    max_episode_steps=100,
    family="text game",
    description="TextWorld treasure hunter games (extra id: any TextWorld challenge plugs in)",
    kwargs={"challenge": "tw-treasure_hunter"},
)
register(
    "earlyexp/Lab-v0",
    "envs.lab:LabEnv",
    max_episode_steps=60,
    family="text game",
    description="ScienceWorld-like lab: state of matter, measurement, paint mixing, circuits, plants",
)
register(
    "earlyexp/Shop-v0",
    "envs.shop:ShopEnv",
    max_episode_steps=20,
    family="web-like",
    description="WebShop-like shopping: BM25 search, result pages, item options, buy",
)
register(
    "earlyexp/WebNav-v0",
    "envs.webnav:WebNavEnv",
    max_episode_steps=30,
    family="web-like",
    description="WebArena-like site navigation: forum, account and orders; final-state checks",
)
register(
    "earlyexp/Tools-v0",
    "envs.tools:ToolsEnv",
    max_episode_steps=30,
    family="web-like",
    description="tau-bench-retail-like tool use: retail database, domain rules, scripted user",
)
register(
    "earlyexp/BabyAI-v0",
    "envs.babyai:BabyAIEnv",
    max_episode_steps=64,
    family="grid",
    description="BabyAI language-conditioned levels on Minigrid, BabyAIBot expert",
)
register(
    "earlyexp/DoorKey-v0",
    "envs.doorkey:DoorKeyEnv",
    max_episode_steps=100,
    family="grid",
    description="Minigrid keys and doors with a search planner expert",
)

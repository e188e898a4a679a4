"""A tiny contract env for tests: walk a corridor to a door and open it.

Importing this module registers ``toy/Corridor-v0``, as a user's own env would.
"""

from __future__ import annotations

from dataclasses import dataclass

from envs import TextEnv, register


@dataclass
class Corridor:
    length: int
    door: int
    position: int = 0
    opened: bool = False


class CorridorEnv(TextEnv):
    """Walk to the door and open it; train doors are at even cells, test doors at odd ones."""

    def _generate(self) -> tuple[str, str]:
        length = int(self.np_random.integers(6, 12))
        parity = 0 if self.split == "train" else 1
        doors = [cell for cell in range(1, length) if cell % 2 == parity]
        self.world = Corridor(length, int(self.np_random.choice(doors)))
        return f"open the door at cell {self.world.door}.", self._describe()

    def _describe(self) -> str:
        return f"You are at cell {self.world.position} of {self.world.length}."

    def admissible_actions(self) -> list[str]:
        w = self.world
        actions = []
        if w.position > 0:
            actions.append("go left")
        if w.position < w.length - 1:
            actions.append("go right")
        if w.position == w.door and not w.opened:
            actions.append("open door")
        return actions

    def _execute(self, command: str) -> str:
        if command == "open door":
            self.world.opened = True
            return "You open the door."
        self.world.position += 1 if command == "go right" else -1
        return self._describe()

    def checklist(self) -> dict[str, bool]:
        return {
            "at the door": self.world.position == self.world.door,
            "door is open": self.world.opened,
        }

    def _succeeded(self) -> bool:
        return self.world.opened

    def expert_action(self) -> str:
        w = self.world
        if w.position == w.door:
            return "open door"
        return "go right" if w.position < w.door else "go left"


register("toy/Corridor-v0", "tests.envs.toy_env:CorridorEnv", max_episode_steps=30, family="toy")

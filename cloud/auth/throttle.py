"""Failed-login throttling per username (in the memory of one worker).

After ``max_failures`` wrong passwords for a username within ``window`` seconds, further logins
for it are refused without checking the password until the oldest failure leaves the window.
This bounds online guessing (and the CPU an attacker can make Argon2 burn for one account); the
price is that someone can keep a known username locked, which is why the window is short. With
several workers the limit applies per worker.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from cloud.auth.errors import TooManyAttempts


class LoginThrottle:
    """Counts failures per username; ``max_failures == 0`` switches it off."""

    def __init__(self, max_failures: int, window: float, *, max_users: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_users = max_users
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, username: str) -> None:
        """Raise :class:`TooManyAttempts` when ``username`` is locked now."""
        if self.max_failures <= 0:
            return
        now = self.clock()
        with self._lock:
            times = self._failures.get(username)
            if times is None:
                return
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.max_failures:
                wait = max(1, int(times[0] + self.window - now + 0.999))
                raise TooManyAttempts(f"too many failed logins for this user; retry in {wait} s",
                                      wait)
            if not times:
                del self._failures[username]

    def failed(self, username: str) -> None:
        """Record a failed login."""
        if self.max_failures <= 0:
            return
        with self._lock:
            times = self._failures.pop(username, None) or deque(maxlen=self.max_failures)
            times.append(self.clock())
            self._failures[username] = times  # most recent last
            while len(self._failures) > self.max_users:
                self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        """A successful login forgets the failures."""
        with self._lock:
            self._failures.pop(username, None)

"""The child process of one local server: signalled only while it is ours, then reaped.

A :class:`ServerProcess` holds at most one :class:`subprocess.Popen` at a time
(a restart tracks the next one) and only ever signals the PID it holds:
``Popen`` never signals a child it has already reaped. Every tracked process
still alive when Python exits is SIGKILLed, unless :meth:`~ServerProcess.detach`
was called.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import subprocess
import threading

__all__ = ["ServerProcess"]

_live: set[ServerProcess] = set()
_live_lock = threading.Lock()


def _kill_all_at_exit() -> None:
    with _live_lock:
        processes = list(_live)
    for process in processes:
        with contextlib.suppress(Exception):
            process.kill()


atexit.register(_kill_all_at_exit)


class ServerProcess:
    """The process of one server: started elsewhere, tracked, signalled and reaped here."""

    __slots__ = ("_last_pid", "_paused", "_proc")

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._last_pid: int | None = None
        self._paused = False

    def track(self, proc: subprocess.Popen[bytes]) -> None:
        """``proc`` was just started: it is the one to signal now (not paused)."""
        self._proc = proc
        self._paused = False
        with _live_lock:
            _live.add(self)

    @property
    def tracked(self) -> bool:
        """True from :meth:`track` until the process is reaped."""
        return self._proc is not None

    @property
    def pid(self) -> int | None:
        """PID of the tracked process, else of the last one (``None`` if never started)."""
        return self._proc.pid if self._proc is not None else self._last_pid

    @property
    def returncode(self) -> int | None:
        """Exit status of the tracked process once it exited and was polled, else None."""
        return self._proc.returncode if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the tracked process has not exited (paused counts as running)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume` (or the process's end)."""
        return self._paused and self.running

    def reap(self) -> None:
        """Forget the tracked process if it has exited (its PID stays :attr:`pid`)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            return
        proc.wait()
        self._last_pid = proc.pid
        self._proc = None
        self._paused = False
        self.detach()

    def kill(self) -> None:
        """SIGKILL the process (if alive) and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()  # Popen.send_signal never signals an already-reaped PID
        proc.wait()
        self.reap()

    def stop(self, timeout: float) -> None:
        """SIGTERM (resuming first if paused), SIGKILL after ``timeout``; reap."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait()
        self.reap()

    def terminate(self) -> None:
        """Send SIGTERM without waiting (resuming first if paused)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            if self._paused:
                proc.send_signal(signal.SIGCONT)
            proc.terminate()
            if self._paused:
                # A SIGSTOP sent just before may take effect after the first
                # SIGCONT (the child stops itself when next scheduled): resume
                # again, so the SIGTERM is handled.
                proc.send_signal(signal.SIGCONT)

    def pause(self) -> bool:
        """Freeze the process with SIGSTOP; False if it is not running."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGSTOP)
        self._paused = True
        return True

    def resume(self) -> None:
        """Continue a paused process with SIGCONT."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
        self._paused = False

    def detach(self) -> None:
        """Stop tracking for exit: the process is no longer killed when Python exits."""
        with _live_lock:
            _live.discard(self)

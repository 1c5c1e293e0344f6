"""rclpy's lifecycle state machine -> the segmentation node's transitions (rclpy imported here).

:class:`NodeTransitions` is registered as a managed entity of the node's ``LifecycleNode``, so
rclpy's ``~/change_state`` service (``ros2 lifecycle set``, launch_ros' ``ChangeState`` events,
Nav2's lifecycle manager) and the node's own autostart run the same callbacks. Each callback of
the owner returns None on success or raises; a CitysegError (a bad parameter, a missing bundle)
becomes FAILURE with its message logged once, so a failed configure leaves the node unconfigured
and alive; any other exception is reported the same way and becomes ERROR (rclpy then calls
on_error, which releases everything: unconfigured).
"""

from __future__ import annotations

from typing import Protocol

from rclpy.lifecycle import LifecycleState, ManagedEntity, TransitionCallbackReturn

from cityseg.errors import CitysegError


class Transitions(Protocol):
    """What the node does on each transition (each may raise CitysegError)."""

    def configure(self) -> None: ...
    def activate(self) -> None: ...
    def deactivate(self) -> None: ...
    def cleanup(self) -> None: ...
    def transition_failed(self, transition: str, error: Exception) -> None: ...


class NodeTransitions(ManagedEntity):
    """Forwards rclpy's transition callbacks to ``owner``; registered with ``add_managed_entity``."""

    def __init__(self, owner: Transitions):
        self.owner = owner

    def _run(self, transition: str, action) -> TransitionCallbackReturn:
        try:
            action()
        except CitysegError as exc:
            self.owner.transition_failed(transition, exc)
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # a bug: rclpy would swallow it silently; say what it was, then on_error
            self.owner.transition_failed(transition, RuntimeError(f"internal error: {type(exc).__name__}: {exc}"))
            return TransitionCallbackReturn.ERROR
        return TransitionCallbackReturn.SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._run("configure", self.owner.configure)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._run("activate", self.owner.activate)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._run("deactivate", self.owner.deactivate)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._run("cleanup", self.owner.cleanup)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._run("shutdown", self.owner.cleanup)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A callback raised something unexpected: release everything and go back to unconfigured."""
        self.owner.cleanup()
        return TransitionCallbackReturn.SUCCESS

"""The piped stops on SIGTERM whichever of its threads the kernel hands the signal to."""

import signal
import threading
import time

import pytest

from apps.pipedagent.runtime import wait_until_set


def test_a_sigterm_delivered_to_another_thread_still_stops_the_wait():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are installed from the main thread only")
    stop = threading.Event()
    fallback = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())

    def deliver() -> None:
        time.sleep(0.2)
        # SIGTERM to this thread, not the main one: what `docker stop` may do to a process with many threads.
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        if not stop.wait(5):
            fallback.set()  # the main thread slept through it: end the wait so the test can fail, not hang
            stop.set()

    thread = threading.Thread(target=deliver)
    try:
        thread.start()
        wait_until_set(stop)
    finally:
        thread.join(10)
        signal.signal(signal.SIGTERM, previous)
    assert not fallback.is_set(), "the main thread did not run the SIGTERM handler"

"""SocketSubscription: the hub writing a stream's socket itself (gunicorn's gevent worker), on a
real socket pair and gevent's real event loop: order kept across the hand-over and a full send
buffer, slow pages caught up by a short-lived writer, stuck or vanished pages dropped and their
clean-up run exactly once."""
import socket

import gevent
import pytest
from gevent.socket import wait_read

from fittribe.realtime.hub import END_OF_RESPONSE, HEARTBEAT_CHUNK, RealtimeHub, SocketSubscription, chunk


@pytest.fixture
def hub():
    hub = RealtimeHub("socket_subscription_hub", __name__)
    hub.write_timeout = 0.5
    return hub


@pytest.fixture
def pair(monkeypatch):
    taken = []
    take_socket = SocketSubscription.take_socket

    def take_and_remember(subscription, sock):
        taken.append(subscription)
        take_socket(subscription, sock)

    monkeypatch.setattr(SocketSubscription, "take_socket", take_and_remember)
    server, page = socket.socketpair()
    page.setblocking(False)
    yield server, page
    for subscription in taken:  # the event loop must not watch a socket closed under it
        if subscription.hangup is not None:
            subscription.hangup.stop()
    server.close()
    page.close()


def started(hub) -> SocketSubscription:
    """A stream past its replay (nothing to skip): events go out as they come."""
    subscription = SocketSubscription(hub, ("public",))
    subscription.start(0)
    return subscription


def subscription_with_end(hub, ended: list) -> SocketSubscription:
    subscription = started(hub)
    subscription.on_end = lambda: ended.append(True)
    return subscription


def handed_over(hub, server, ended: list, small_buffer: bool = False) -> SocketSubscription:
    """A stream whose socket the hub holds; `small_buffer` makes the kernel refuse bytes early."""
    if small_buffer:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    subscription = subscription_with_end(hub, ended)
    subscription.take_socket(server)
    return subscription


def flooded(hub, server, ended: list, count: int, size: int) -> SocketSubscription:
    """A handed-over stream sent more than its small buffer takes: a writer waits for the page."""
    subscription = handed_over(hub, server, ended, small_buffer=True)
    for n in range(1, count + 1):
        subscription.deliver(n, b"", chunk(event(n, size)))
    return subscription


def read_exactly(page, size: int, timeout: float = 5.0) -> bytes:
    data = b""
    while len(data) < size:
        try:
            got = page.recv(size - len(data))
        except BlockingIOError:
            wait_read(page.fileno(), timeout=timeout)
            continue
        assert got, "the hub closed the socket early"
        data += got
    return data


def read_to_eof(page, timeout: float = 5.0) -> bytes:
    data = b""
    while True:
        try:
            got = page.recv(65536)
        except BlockingIOError:
            wait_read(page.fileno(), timeout=timeout)
            continue
        if not got:
            return data
        data += got


def event(n: int, size: int = 10) -> bytes:
    return b"id:%d\ndata:%s\n\n" % (n, b"x" * size)


def test_events_before_the_hand_over_wait_and_go_first(hub, pair):
    server, page = pair
    subscription = started(hub)
    subscription.deliver(1, event(1), chunk(event(1)))
    subscription.heartbeat()  # gunicorn still owns the socket: no heartbeat yet
    subscription.take_socket(server)
    subscription.deliver(2, event(2), chunk(event(2)))
    expected = chunk(event(1)) + chunk(event(2))
    assert read_exactly(page, len(expected)) == expected
    gevent.sleep(0)
    assert subscription.writer is None and not subscription.pending


def test_what_the_replay_sent_and_what_was_published_twice_is_not_sent_again(hub, pair):
    server, page = pair
    subscription = SocketSubscription(hub, ("public",))
    for n in (1, 2, 3):  # arrive while the replay (up to position 2) is read: held
        subscription.deliver(n, event(n), chunk(event(n)))
    subscription.start(2)
    subscription.take_socket(server)
    for n in (2, 3, 4):  # 2 and 3 published again (a publisher died before marking them)
        subscription.deliver(n, event(n), chunk(event(n)))
    subscription.heartbeat()
    expected = chunk(event(3)) + chunk(event(4)) + HEARTBEAT_CHUNK
    assert read_exactly(page, len(expected)) == expected


def test_live_events_that_come_while_the_replay_is_read_are_not_sent_twice(hub, pair):
    """A reconnecting page subscribes, then reads its replay from the database; an event
    published in between is both in the replay and live (it was sent twice before)."""
    server, page = pair
    subscription = SocketSubscription(hub, ("public",))
    subscription.deliver(7, event(7), chunk(event(7)))  # live, while the replay is being read
    subscription.deliver(8, event(8), chunk(event(8)))  # committed after the replay's query
    subscription.start(7)  # the replay (6, 7) goes out with the first bytes
    subscription.take_socket(server)
    subscription.deliver(7, event(7), chunk(event(7)))  # a late copy is dropped too
    subscription.deliver(9, event(9), chunk(event(9)))
    expected = chunk(event(8)) + chunk(event(9))
    assert read_exactly(page, len(expected)) == expected
    gevent.sleep(0.05)
    page.setblocking(False)
    with pytest.raises(BlockingIOError):
        page.recv(1)


def test_a_slow_page_gets_everything_in_order_once_it_reads(hub, pair):
    server, page = pair
    subscription = handed_over(hub, server, [], small_buffer=True)
    frames = [chunk(event(n, 8000)) for n in range(1, 101)]
    for n, framed in enumerate(frames, start=1):
        subscription.deliver(n, b"", framed)
    assert subscription.writer is not None  # the buffer is full: a writer waits for the page
    assert read_exactly(page, sum(map(len, frames))) == b"".join(frames)
    gevent.sleep(0.01)
    assert subscription.writer is None and not subscription.closed
    subscription.deliver(101, event(101), chunk(event(101)))  # straight to the socket again
    assert read_exactly(page, len(chunk(event(101)))) == chunk(event(101))


def test_a_page_that_takes_nothing_is_dropped_after_the_write_timeout(hub, pair):
    server, page = pair
    ended = []
    subscription = flooded(hub, server, ended, 100, 8000)
    gevent.sleep(hub.write_timeout + 0.3)
    assert subscription.closed and subscription.writer is None
    assert server.fileno() == -1
    gevent.sleep(0.01)
    assert ended == [True]


def test_closing_while_the_writer_waits_lets_go_of_the_socket_once(hub, pair):
    server, page = pair
    ended = []
    subscription = flooded(hub, server, ended, 100, 8000)
    gevent.sleep(0.01)
    subscription.close(END_OF_RESPONSE)
    subscription.close(END_OF_RESPONSE)
    gevent.sleep(0.05)
    assert server.fileno() == -1 and subscription.writer is None and ended == [True]


def test_shutdown_ends_the_response_and_the_connection(hub, pair):
    server, page = pair
    ended = []
    subscription = handed_over(hub, server, ended)
    subscription.close(END_OF_RESPONSE)
    assert read_to_eof(page) == END_OF_RESPONSE
    hub.wait_ended(1)
    assert ended == [True] and subscription.on_end is None


def test_a_vanished_page_is_dropped_on_a_later_write(hub, pair):
    server, page = pair
    ended = []
    subscription = handed_over(hub, server, ended)
    page.close()
    for _ in range(2):  # the first write may still be accepted by the kernel
        subscription.heartbeat()
    assert subscription.closed and server.fileno() == -1
    hub.wait_ended(1)
    assert ended == [True]


def test_closed_before_the_hand_over(hub):
    ended = []
    subscription = subscription_with_end(hub, ended)
    subscription.deliver(1, event(1), chunk(event(1)))
    subscription.close(END_OF_RESPONSE)
    hub.wait_ended(1)
    assert subscription.closed and ended == [True]


def test_a_page_too_far_behind_is_dropped(hub, pair):
    server, page = pair
    ended = []
    subscription = flooded(hub, server, ended, 2000, 1000)
    gevent.sleep(0.01)
    assert subscription.closed and server.fileno() == -1 and ended == [True]

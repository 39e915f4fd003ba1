# Solution to exercise 1 of notebook 06: the signal handler only sets a flag; the loop checks it
# between two turns of pika's I/O loop, cancels the consumer and returns.
solution = '''
stop_requested = False


def on_signal(signum, frame):
    global stop_requested
    stop_requested = True          # nothing else: pika may be in the middle of something


def consume(connection, channel, consumer_tag):
    while not stop_requested:
        connection.process_data_events(time_limit=0.2)   # runs the callback, sends heartbeats
    channel.basic_cancel(consumer_tag)                   # no new tasks; the current one was acked
'''
SOLUTION_STOP = MY_STOP.with_name("solution_stop.py")  # noqa: F821 (the notebook's): a file of its own
SOLUTION_STOP.write_text(solution)
check = try_my_shutdown(SOLUTION_STOP)  # noqa: F821
assert check, check
check

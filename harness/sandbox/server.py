"""The process inside the sandbox: runs the untrusted program and answers calls with plain data.

Sent as text (``wire.py``'s source, then this file's) to ``python3 -I -B -S -c``; standard library
only. Nothing here is trusted by the harness: the program may replace any of it, and the trusted
side (:mod:`.judge`) believes nothing but well-formed plain data on the response channel.

Protocol (one JSON object per line; requests on stdin, responses on stdout, which the server moves
to private descriptors before any program code runs; the program's own stdout and stderr both go
to stderr, which the judge reads with a cap):

1. request ``{"program", "setup", "names", "limits"}``: the server sets its resource limits, runs
   the program, then the setup code, in one namespace, and answers ``{"ready": {name: desc}}``
   (``["call"]``, ``["class"]``, ``["value", data]``, ``["handle", id]`` or ``["missing"]``) or
   ``{"crash": text}``;
2. request ``{"call": ["name", name] | ["h", id], "args": data, "kwargs": data}``: answers
   ``{"value": data}``, ``{"handle": id}`` (only meaningful when a class was called),
   ``{"raise": [exception type name, message]}`` or ``{"notplain": type name}``.
"""

try:  # imported as a module (documentation, tests); in the sandbox wire.py's source comes first
    from .wire import NotPlain, decode, dumps, encode, loads
except ImportError:
    pass


class _ScanContext:
    """What json's C scanner reads from its decoder (json's defaults; no NaN or Infinity)."""

    strict, object_hook, object_pairs_hook, parse_float, parse_int, memo = True, None, None, float, int, {}

    @staticmethod
    def parse_constant(name):
        raise ValueError("%s is not allowed" % name)


def _lean_codec():
    """``dumps`` and ``loads`` for this process without importing :mod:`json` (which imports ``re``,
    ``enum``, ``functools``...: about 5 ms of CPU at every sandbox's start): the C accelerator that
    json itself uses, with json's settings (ASCII output, compact). Where it is missing, wire's."""
    try:
        import _json

        encoder = _json.make_encoder({}, None, _json.encode_basestring_ascii, None, ":", ",", False, False, False)
        scanner = _json.make_scanner(_ScanContext)
    except (ImportError, AttributeError, TypeError):
        return dumps, loads

    def lean_dumps(message):
        return ("".join(encoder(message, 0)) + "\n").encode()

    def lean_loads(line):
        text = line.decode("utf-8", "surrogatepass").strip(" \t\n\r")
        try:
            message, end = scanner(text, 0)
        except StopIteration:
            raise ValueError("malformed message") from None
        if end != len(text) or type(message) is not dict:
            raise ValueError("malformed message")
        return message

    return lean_dumps, lean_loads


dumps, loads = _lean_codec()


def open_channels():
    """Move the request and response channels off descriptors 0 and 1 (stdin reads /dev/null, stdout goes to
    stderr) before any program code runs; returns (the request reader, send(message))."""
    import os

    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    reader = os.fdopen(rfd, "rb")
    write = os.write

    def send(message):
        data = dumps(message)
        while data:
            data = data[write(wfd, data):]

    return reader, send


def set_limits(lim, send):
    """The job's resource limits on this process; False (after answering ``crash``) when one cannot be set."""
    import resource

    mb = 1 << 20
    for res, value in ((resource.RLIMIT_AS, lim["memory_mb"] * mb), (resource.RLIMIT_CPU, lim["cpu_s"]),
                       (resource.RLIMIT_FSIZE, lim["file_mb"] * mb), (resource.RLIMIT_NOFILE, lim["nofile"]),
                       (resource.RLIMIT_NPROC, lim["nproc"]), (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(res, (value, value))
        except (ValueError, OSError) as exc:
            send({"crash": "sandbox could not set limit %s: %s" % (res, exc)})
            return False
    return True


class Handles:
    """Objects that are not plain data, by number (1, 2, ...): the harness refers to them by handle."""

    def __init__(self):
        self.objects = {}

    def add(self, obj):
        key = len(self.objects) + 1
        self.objects[key] = obj
        return key

    def get(self, key):
        if key not in self.objects:
            raise ValueError("unknown handle")
        return self.objects[key]


def run_program(job, send):
    """The program, then the setup code, in one namespace; None (after answering ``crash``) if either raised."""
    scope = {"__name__": "__sandbox__", "__builtins__": __builtins__}
    try:
        for part in ("program", "setup"):
            exec(compile(job[part], "<%s>" % part, "exec"), scope)
    except BaseException as exc:
        try:
            text = "%s: %s" % (type(exc).__name__, str(exc)[:1000])
        except BaseException:
            text = "the program raised an exception"
        send({"crash": text})
        return None
    return scope


def describe_names(names, scope, handles):
    """The ``ready`` answer: each asked-for name as ["missing"], ["class"], ["call"], ["value", data] or
    ["handle", id]."""
    ready = {}
    for name in names:
        if name not in scope:
            ready[name] = ["missing"]
            continue
        obj = scope[name]
        if isinstance(obj, type):
            ready[name] = ["class"]
        elif callable(obj):
            ready[name] = ["call"]
        else:
            try:
                ready[name] = ["value", encode(obj)]
            except NotPlain:
                ready[name] = ["handle", handles.add(obj)]
    return ready


def answer_call(request, scope, handles, send):
    """One call request: its value, a handle (a class was called and gave no plain data), the exception it
    raised, or ``notplain``."""
    kind, key = request["call"]
    fn = scope.get(key) if kind == "name" else handles.get(key)
    try:
        result = fn(*decode(request["args"], handles.get), **decode(request["kwargs"], handles.get))
    except BaseException as exc:
        try:
            message = str(exc)[:1000]
        except BaseException:
            message = "?"
        send({"raise": [type(exc).__name__, message]})
        return
    try:
        send({"value": encode(result)})
    except NotPlain as exc:
        if isinstance(fn, type):
            send({"handle": handles.add(result)})
        else:
            send({"notplain": str(exc)})


def main():
    import sys

    reader, send = open_channels()
    job = loads(reader.readline())
    if not set_limits(job["limits"], send):
        return
    handles = Handles()
    scope = run_program(job, send)
    if scope is None:
        return
    ready = describe_names(job["names"], scope, handles)
    del job
    send({"ready": ready})
    sys.stdout.flush()
    while True:
        line = reader.readline()
        if not line:
            return
        answer_call(loads(line), scope, handles, send)


if __name__ == "__main__":
    main()

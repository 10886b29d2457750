"""Plain data on the wire between the trusted test process and the sandboxed program.

Standard library only and no imports from the package: this file's source is also sent, as text,
into the sandbox (see :mod:`.server`), where nothing of the harness is visible.

A value is one JSON document in which every value is a tagged list, built only from these types:

=========  ==========================  =====================================================
tag        Python type (exact)         payload
=========  ==========================  =====================================================
``n``      ``None``                    none
``b``      ``bool``                    JSON true/false
``i``      ``int``                     hexadecimal text (no digit limit, no float rounding)
``f``      ``float``                   ``float.hex`` text (exact; inf and nan included)
``c``      ``complex``                 two ``float.hex`` texts
``s``      ``str``                     JSON string
``y``      ``bytes``                   hexadecimal text (``bytearray`` is sent as bytes)
``l``      ``list``                    list of tagged values
``t``      ``tuple``                   list of tagged values
``d``      ``dict``                    list of [key, value] pairs of tagged values
``S``/``F``  ``set``/``frozenset``     list of tagged values
``T``      a built-in type             its name, one of :data:`TYPES` (``remove_datatype(t, int)``)
``h``      a remote object             integer handle (see :mod:`.judge`), never code
=========  ==========================  =====================================================

Decoding builds exactly these built-in types by a dispatch on the tag: no constructor named by the
data is ever looked up, nothing is unpickled or evaluated, so data cannot run code on the decoding
side. Depth and size are bounded (:data:`MAX_DEPTH`, the caller's byte cap). Subclasses of the
built-in types (``namedtuple``, ``OrderedDict``, a ``str`` subclass with a rigged ``__eq__``) are
sent as their base type's contents: the receiver compares the contents, never the sender's methods.
"""

MAX_DEPTH = 100
#: built-in types that may be sent as values (by name, looked up in this table only)
TYPES = {t.__name__: t for t in (int, float, complex, str, bytes, bytearray, bool, list, tuple, dict, set,
                                 frozenset, type(None), object)}


class NotPlain(TypeError):
    """A value that is not plain data (a function, a generator, an instance of a user class...)."""


def encode(value, handles=None, depth=0):
    """``value`` as a tagged JSON-able structure; raises :class:`NotPlain` for anything else.

    ``handles``: an optional function object -> handle id, used for values that are not plain data;
    without it, such values raise :class:`NotPlain`.
    """
    if depth > MAX_DEPTH:
        raise NotPlain("data nested deeper than %d levels" % MAX_DEPTH)
    d = depth + 1
    if value is None:
        return ["n"]
    if value is True or value is False:
        return ["b", value]
    if isinstance(value, bool):  # a bool subclass cannot exist; kept for clarity
        return ["b", bool(value)]
    if isinstance(value, int):
        return ["i", hex(int(value))]
    if isinstance(value, float):
        return ["f", float.hex(float(value))]
    if isinstance(value, complex):
        value = complex(value)
        return ["c", float.hex(value.real), float.hex(value.imag)]
    if isinstance(value, str):
        return ["s", str.__str__(value)]
    if isinstance(value, (bytes, bytearray)):
        return ["y", bytes(value).hex()]
    if isinstance(value, list):
        return ["l", [encode(v, handles, d) for v in list.__iter__(value)]]
    if isinstance(value, tuple):
        return ["t", [encode(v, handles, d) for v in tuple.__iter__(value)]]
    if isinstance(value, dict):
        return ["d", [[encode(k, handles, d), encode(v, handles, d)] for k, v in dict.items(value)]]
    if isinstance(value, frozenset):
        return ["F", [encode(v, handles, d) for v in frozenset.__iter__(value)]]
    if isinstance(value, set):
        return ["S", [encode(v, handles, d) for v in set.__iter__(value)]]
    if type(value) is type and TYPES.get(getattr(value, "__name__", None)) is value:
        return ["T", value.__name__]
    if handles is not None:
        return ["h", handles(value)]
    raise NotPlain("%s is not plain data" % _type_name(value))


def _type_name(value):
    try:
        t = type(value)
        return "%s.%s" % (t.__module__, t.__qualname__) if t.__module__ != "builtins" else t.__qualname__
    except Exception:  # a hostile metaclass
        return "an object"


def decode(tree, handle=None, depth=0):
    """The value a tagged structure describes, built from built-in types only.

    ``handle``: a function handle id -> object; without it, a handle is an error.
    Raises ``ValueError`` for anything malformed.
    """
    if depth > MAX_DEPTH + 1:
        raise ValueError("data nested too deeply")
    if type(tree) is not list or not tree or type(tree[0]) is not str:
        raise ValueError("malformed value")
    tag, d = tree[0], depth + 1
    n = len(tree)
    if tag == "n" and n == 1:
        return None
    if tag == "b" and n == 2 and type(tree[1]) is bool:
        return tree[1]
    if tag == "i" and n == 2 and type(tree[1]) is str:
        return int(tree[1], 16)
    if tag == "f" and n == 2 and type(tree[1]) is str:
        return float.fromhex(tree[1])
    if tag == "c" and n == 3 and type(tree[1]) is str and type(tree[2]) is str:
        return complex(float.fromhex(tree[1]), float.fromhex(tree[2]))
    if tag == "s" and n == 2 and type(tree[1]) is str:
        return tree[1]
    if tag == "y" and n == 2 and type(tree[1]) is str:
        return bytes.fromhex(tree[1])
    if n == 2 and type(tree[1]) is list:
        items = tree[1]
        if tag == "l":
            return [decode(v, handle, d) for v in items]
        if tag == "t":
            return tuple(decode(v, handle, d) for v in items)
        if tag == "S":
            return {decode(v, handle, d) for v in items}
        if tag == "F":
            return frozenset(decode(v, handle, d) for v in items)
        if tag == "d":
            out = {}
            for pair in items:
                if type(pair) is not list or len(pair) != 2:
                    raise ValueError("malformed dict item")
                out[decode(pair[0], handle, d)] = decode(pair[1], handle, d)
            return out
    if tag == "T" and n == 2 and type(tree[1]) is str and tree[1] in TYPES:
        return TYPES[tree[1]]
    if tag == "h" and n == 2 and type(tree[1]) is int and handle is not None:
        return handle(tree[1])
    raise ValueError("malformed value (tag %r)" % tag[:8])


def dumps(message):
    """One protocol message (a JSON object of already-encoded parts) as one line of bytes."""
    import json  # here, not at the top: the sandbox's server uses its own codec and never imports json

    return (json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n").encode()


def loads(line):
    import json

    message = json.loads(line)
    if type(message) is not dict:
        raise ValueError("malformed message")
    return message

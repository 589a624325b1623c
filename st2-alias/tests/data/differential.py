#!/usr/bin/env python3
"""Regenerates differential.formats.jsonl and differential.sets.jsonl beside this file.

Extra conformance cases, produced the same way as st2-vectors/ (beside this file): by running
StackStorm's own matching code (action_alias_utils.py and actionalias_matching.py, taken
from a StackStorm/st2 checkout, not modified) on CPython 3.11, with the database query of
get_matching_alias replaced by the in-memory filter that st2-vectors/README.md
describes. The inputs are random (seeded) combinations chosen to reach corners the shared
vectors do not: regex syntax, whitespace and quoting, case folding, extras, and random alias
sets with display-only, string-representation, match_multiple, disabled and same-name
aliases. Only a sample of the generated cases is kept, to keep the files small.

Usage: python3 differential.py /path/to/st2-checkout
Needs no StackStorm dependencies: the few st2common modules those two files import are
replaced by minimal stand-ins below.
"""
import importlib.util
import json
import logging
import os
import random
import re
import sys
import types

if sys.version_info[:2] != (3, 11):
    sys.exit("run this with CPython 3.11, the version StackStorm's vectors were made with")

ST2 = sys.argv[1] if len(sys.argv) > 1 else sys.exit(__doc__)
HERE = os.path.dirname(os.path.abspath(__file__))


def stub(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


class ParseException(ValueError):
    pass


class ActionAliasAmbiguityException(ValueError):
    def __init__(self, msg, matches=None, command=None):
        super().__init__(msg)
        self.matches = matches
        self.command = command


class Q:
    def __init__(self, **kw):
        self.kw = kw

    def __or__(self, other):
        return ("or", self, other)


DB = []


class ActionAlias:
    """get_matching_alias's two queries, as st2-vectors/README.md describes them."""

    @staticmethod
    def query(*args, **kw):
        if args:  # pass 1: a format that is a string or not flagged match_multiple
            return [a for a in DB if a.enabled and any(
                isinstance(f, str) or (isinstance(f, dict) and not f.get("match_multiple"))
                for f in a.formats)]
        return [a for a in DB if a.enabled and any(
            isinstance(f, dict) and f.get("match_multiple") is True for f in a.formats)]


for name in ["st2common", "st2common.util", "st2common.constants", "st2common.services",
             "st2common.exceptions", "st2common.models", "st2common.models.utils",
             "st2common.persistence", "mongoengine", "mongoengine.queryset"]:
    stub(name)
stub("st2common.util.jinja", render_values=None)
stub("st2common.constants.keyvalue")
stub("st2common.services.keyvalues")
stub("st2common.exceptions.content", ParseException=ParseException)
stub("st2common.exceptions.actionalias", ActionAliasAmbiguityException=ActionAliasAmbiguityException)
stub("st2common.log", getLogger=logging.getLogger)
stub("mongoengine.queryset.visitor", Q=Q)
stub("st2common.persistence.actionalias", ActionAlias=ActionAlias)


def load(name, relative):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ST2, relative))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


aau = load("st2common.models.utils.action_alias_utils",
           "st2common/st2common/models/utils/action_alias_utils.py")
aam = load("st2common.util.actionalias_matching", "st2common/st2common/util/actionalias_matching.py")


class AliasDB:
    def __init__(self, doc):
        self.__dict__.update(doc)
        self.ref = doc["pack"] + "." + doc["name"]

    def get_format_strings(self):  # ActionAliasDB.get_format_strings
        result = []
        for f in self.formats:
            if isinstance(f, dict) and f.get("representation", None):
                result.extend(f["representation"])
            else:
                result.append(f)
        return result


def error(e):
    kind = "re.error" if isinstance(e, re.error) else type(e).__name__
    return {"type": kind, "message": str(e)}


def format_case(fmt, command, multiple):
    case = {"format": fmt, "command": command}
    if multiple:
        case["match_multiple"] = True
    try:
        result = aau.extract_parameters(fmt, command, multiple)
        case["expect"] = {"params_list": result} if multiple else {"params": result}
    except Exception as e:  # ParseException, re.error, KeyError...
        case["expect"] = {"error": error(e)}
    return case


# --- random formats and commands -------------------------------------------------------
R = random.Random(20240)
WORDS = ["run", "on", "status", "deploy", "to", "pack", "install", "foo", "bar", "a", "x",
         "grüß", "部署", "ß", "İ", "K", "ſ", "café", "-", "--opt", "v1.0", "@user", "=", '"',
         "'", "{", "}", "[x]", "1"]
REGEX = [".", "?", "*", "+", "(a|b)", "(?:x)?", "[a-z]+", r"\d+", r"\s", r"\s+", r"\w+", "$",
         "^", r"\b", r"\B", "(?i)", "(?i:run)", r"(?P<n>\w+)", "(?P<m>[^ ]+)", "(?=a)", "(?!b)",
         "(?<=a)", "(?<!x)", "{2}", "{,3}", "{1,2}?", "\\\\", r"\A", r"\Z", "(?x) a b ",
         "(?s:.)", r"(?a:\w+)", "(?m)", "++", "*?", "|", "(", ")", "(?>a+)", r"\x41",
         r"\u00e9", r"[\w-]", r"[^\s]", "(?#c)", "(?P=n)", "(a)?(?(1)b|c)", r"\1", "[]a]",
         "(?-i:x)", r"\S+?", ".*", ".+?", r"\."]
PARAMS = ["{{x}}", "{{ y }}", "{{z=1}}", '{{ w = "d d" }}', "{{v='q'}}", '{{u={"a": 1}}}',
          "{{t=}}", "{{s-s}}", "{{héllo}}", "{{a b}}", "{{}}", "{{ c={{ st2kv.system.x }} }}",
          '{{r=""}}', "{{p = two words }}"]
SPACES = [" ", " ", " ", "  ", "\t", "\n", "\xa0", "\u3000", "\x1c", ""]
CWORDS = ["run", "on", "status", "deploy", "to", "web1", "date", "grüß", "GRÜSS", "部署",
          "straße", "STRASSE", "İ", "i", "K", "ſ", "café", "1", "ABC-1", '"a b"', "'c d'", '"x',
          'y"', '{"k": 1}', "{a}", "k=v", 'k="v w"', "k='q'", 'k={"a": {"b": 1}}', "a==1",
          "--opt=1", "=1", "k=", 'k=""', "v1.0", "@user", "[x]", "(x)", "\\", "é", "e\u0301"]


def random_format():
    parts = []
    for _ in range(R.randint(0, 6)):
        r = R.random()
        parts.append(R.choice(WORDS if r < 0.4 else PARAMS if r < 0.7 else REGEX))
    return "".join(p + R.choice([" ", " ", " ", "", "  "]) for p in parts).strip()


def random_command():
    words = [R.choice(CWORDS) for _ in range(R.randint(0, 6))]
    command = "".join((R.choice(SPACES) if i else "") + w for i, w in enumerate(words))
    if R.random() < 0.2:
        command = R.choice(SPACES) + command
    return command


VALUES = ["date", "web1", '"a b"', "'c d'", '{"k": [1, 2]}', "{x}", "ls -la", "a=b", '"x', "y'",
          "", " ", "http://e.com/?q=1", "ü", "--help", '"', "''", "a b c"]


def instantiated_pair():
    """A format and a command written for it (most of these match)."""
    fparts, cparts, used = [], [], set()
    for _ in range(R.randint(1, 5)):
        r = R.random()
        if r < 0.45:
            w = R.choice(["run", "on", "status", "deploy", "to", "with", "now", "grüß", "Straße"])
            fparts.append(w)
            cparts.append(w)
        elif r < 0.85:
            p = R.choice(["cmd", "hosts", "svc", "app", "x", "ключ"])
            if p in used:
                continue
            used.add(p)
            value = R.choice(VALUES)
            if R.random() < 0.35:
                default = R.choice(["1", "all", '"two words"', "'q'", '{"a": 1}', "", '""', "x y"])
                fparts.append("{{%s=%s}}" % (p, default))
                if R.random() < 0.4:
                    value = None
            else:
                fparts.append("{{%s}}" % p if R.random() < 0.6 else "{{ %s }}" % p)
            if value is not None:
                cparts.append(value)
        else:
            fparts.append(R.choice([r"(?P<n>\w+)", "(now|later)", "(?: (?P<when>now|later))?",
                                    r"\d+", ".*", "$", r"^\s*", "v?", r"\s+", "(?:\\b|^)"]))
            cparts.append(R.choice(["now", "later", "5", "abc", "", " "]))
    command = R.choice([" ", " ", "  ", "\t"]).join(cparts)
    if R.random() < 0.3:
        command += " " + " ".join(R.choice(["k=v", "t=60", 'x="a b"', "y='c'", 'j={"a": 1}',
                                            'e=""', "hosts=web2", "a==1"])
                                  for _ in range(R.randint(1, 3)))
    if R.random() < 0.1:
        command = command.upper()
    return R.choice([" ", " ", "  "]).join(fparts), command


def sample(cases, count, key):
    """Up to `count` cases, spread over the outcome kinds given by `key`."""
    groups = {}
    for case in cases:
        groups.setdefault(key(case), []).append(case)
    chosen = []
    while len(chosen) < count and any(groups.values()):
        for kind in sorted(groups):
            if groups[kind] and len(chosen) < count:
                chosen.append(groups[kind].pop(R.randrange(len(groups[kind]))))
    return chosen


def outcome(case):
    expect = case["expect"]
    if "error" in expect:
        return expect["error"]["type"]
    return "match_multiple" if "params_list" in expect else "params"


# --- random alias sets -----------------------------------------------------------------
STRINGS = ["run {{cmd}} on {{hosts}}", "run {{cmd}}", "run {{cmd=date}} locally",
           "status {{svc=all}}", "status", "status {{svc}}", "{{text}}", "hello", "a|b {{x}}",
           "deploy {{app}}", "deploy {{app}} to {{env}}", "(?i)^\\s*restart {{svc}}",
           "restart {{svc}}", "", "price {{x}}$", "pack install {{ packs }}", "close {{key}}",
           "x", "say {{msg}}"]
BROKEN = ["(?i)bad flags {{x}}", "run (test"]
REPRS = STRINGS + ["(?:\\b|^)fixes (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)(?:\\b|$)",
                   "closes {{key}}", "(?:\\b|^)closes (?P<key>[A-Z]+-[0-9]+)"]
SET_COMMANDS = ["run date on web1", "run date", "run", "status", "status nginx", "status  ",
                "hello", "deploy api", "deploy api to prod", "RESTART nginx", "restart nginx",
                "bad flags y", "price 5", "pack install st2 force=true", "close A-1", "closes",
                "fixes ABC-1", "this fixes ABC-1 and fixes DEF-22", "closes AB-1 closes CD-2",
                "say hi", "x", "", "k=v", "a", "b c", "zzz", "help me"]


def random_format_entry(broken):
    if R.random() < 0.5:
        return R.choice(STRINGS + (BROKEN if broken else []))
    entry = {}
    if R.random() < 0.7:
        entry["display"] = R.choice(["deploy <app>", "help me", "", "fixes <key>", "x"])
    r = R.random()
    if r < 0.6:
        entry["representation"] = [R.choice(REPRS) for _ in range(R.randint(0, 3))]
    elif r < 0.75:
        entry["representation"] = R.choice(REPRS)
    r = R.random()
    if r < 0.3:
        entry["match_multiple"] = True
    elif r < 0.45:
        entry["match_multiple"] = False
    return entry


def set_case(aliases, command):
    DB[:] = [AliasDB(a) for a in aliases]
    expect = {}
    try:
        found = aam.match_command_to_alias(command, DB)
        expect["matches"] = [{k: (v.ref if k == "alias" else v) for k, v in m.items()} for m in found]
    except Exception as e:
        expect["matches_error"] = error(e)
    try:
        chosen = aam.get_matching_alias(command)
    except ActionAliasAmbiguityException as e:
        expect["resolved"] = {"error": {"type": "ActionAliasAmbiguityException", "message": str(e),
                                        "match_count": len(e.matches)}}
    except Exception as e:
        expect["resolved"] = {"error": error(e)}
    else:
        expect["resolved"] = {k: (v.ref if k == "alias" else v) for k, v in chosen.items()}
        # What match_and_execute does next (aliasexecution.py): KeyError on display-only
        # entries, alias looked up by name, disabled check, then the format check.
        try:
            multiple = chosen["match_multiple"]
            alias = next(a for a in DB if a.name == chosen["alias"].name)
            if not alias.enabled:
                expect["execution_error"] = {
                    "type": "Disabled",
                    "message": 'Action alias with name "%s" is disabled.' % alias.name}
            else:
                result = aau.extract_parameters_for_action_alias_db(
                    alias, chosen["representation"] or "", command, multiple)
                expect["execution_params"] = result if multiple else [result]
        except Exception as e:
            expect["execution_error"] = error(e)
    return {"aliases": aliases, "command": command, "expect": expect}


def random_set():
    while True:
        broken = R.random() < 0.15
        aliases = [{"name": R.choice(["deploy", "status", "run", "fixes", "hello", "close", "say"]),
                    "pack": R.choice(["ops", "misc", "jira", "alpha", "beta"]),
                    "enabled": R.random() < 0.85,
                    "formats": [random_format_entry(broken) for _ in range(R.randint(0, 3))]}
                   for _ in range(R.randint(1, 6))]
        refs = [a["pack"] + "." + a["name"] for a in aliases]
        if len(set(refs)) == len(refs):
            return set_case(aliases, R.choice(SET_COMMANDS))


def set_outcome(case):
    expect = case["expect"]
    resolved = expect["resolved"]
    kind = resolved["error"]["type"] + str(resolved["error"].get("match_count")) if "error" in resolved else "ok"
    return kind + "/" + expect.get("execution_error", {}).get("type", "")


def write(name, cases, prefix):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as out:
        for i, case in enumerate(cases):
            out.write(json.dumps({"id": "%s-%04d" % (prefix, i), **case}, ensure_ascii=False) + "\n")


# Hand-picked corners: verbose mode, flags, back-references, conditionals, octal escapes,
# case folding, newlines in defaults (a KeyError inside StackStorm), `$` before a final
# newline, zero-width repeats, alternation factoring, empty formats and commands.
EDGES = [
    ("say {{a=x\ny}}", "say hi"), ("say {{a=x\ny}}", "say {{a=x\ny}}"), ("{{a=1}}\n{{b}}", "2\n3"), ("(?x) run {{cmd}} # comment", "run date"),
    ("(?x)^ run \\ {{cmd}} # c", "run date"), ("(?i)^\\s*(?P<a>x)(?P=a)", "xX"),
    ("(?m)^foo {{x}}$", "foo bar"), ("(?a)^\\s*\\w+ {{x}}", "é y"), ("^\\s*(?a:\\w+) {{x}}", "é y"),
    ("a(?#x)* {{y}}", "aaa z"), ("(?<=(a)) {{x}}", "a b"), ("(a)(?<=\\1) {{x}}", "a b"),
    ("(a)?(?(1)b|c) {{x}}", "ab d"), ("x{2,1}", "xx"), ("x{99999999999}", "x"), ("(?t)a*", "a"),
    ("(?L)a", "a"), ("(?au:a)", "a"), ("\\", "x"), ("[a-\\d]", "x"), ("(?<=a+)b", "ab"),
    ("(?P<1>x)", "x"), ("\\8", "x"), ("(a)\\2", "x"), ("(a)\\1 {{x}}", "aa y"), ("\\0101 {{x}}", "A y"),
    ("\\777", "x"), ("(?i)straße {{x}}", "STRASSE y"), ("(?i)straße {{x}}", "STRAßE y"),
    ("(?i)[ſ] {{x}}", "S y"), ("(?i)k {{x}}", "\u212a y"), ("(?i)i {{x}}", "İ y"), ("(?i)[a-z]+ {{x}}", "ſK y"),
    ("{{x}}\\b", "a"), ("\\B{{x}}", "a"), ("", ""), ("", "   "), ("", "k=v"), ("", "x"), ("{{a}}", ""),
    ("{{a=x}}", 'a=""'), ("{{a=x}} {{b=y}}", 'a=""'), ("run {{c}}", "run x\n"), ("run {{c}}", "run x k=1\n"),
    ("run {{c}}$", "run x\n"), ("(?:a|^)b {{x}}", "b c"), ("(?:^|a)b {{x}}", "b c"), ("^a|^b", "b"),
    ("(?=a)*b", "b"), ("(?=(a))*a {{x}}", "a y"), ("(?:\\b)*x {{y}}", "x z"), ("a{,2}+ {{x}}", "aa y"),
    ("(?>a+)a {{x}}", "aaa y"), ("{{x}}$", "a\n"), ("\\U0001F680 {{x}}", "🚀 y"), ("[^\\ud800] {{x}}", "a b"),
    ("(?P<a>.)(?P=b)", "x"), ("(?(1)x|y|z)", "x"), ("{{z=1}}\\s+", "k=1"), ("{{z=1}}\\s+", "  "),
]
edge_cases = [format_case(f, c, m) for f, c in EDGES for m in (False, True)]
random_cases = [format_case(random_format(), random_command(), R.random() < 0.1) for _ in range(20000)]
written_cases = [format_case(*instantiated_pair(), R.random() < 0.05) for _ in range(20000)]
formats = edge_cases + sample(random_cases, 500, outcome) + sample(written_cases, 700, outcome)
sets = sample([random_set() for _ in range(6000)], 300, set_outcome)

# --- classes added later, drawn from their own generator so the cases above stay as they were
# Named Unicode escapes (Python's re accepts `\N{name}` since 3.8: names, aliases, algorithmic
# names, any case; named sequences and unknown names are errors), inside and outside classes.
R = random.Random(20241)
NAMES = ["EM DASH", "em dash", "Em Dash", "LATIN SMALL LETTER E WITH ACUTE", "SNOWMAN",
         "LINE FEED", "NO-BREAK SPACE", "NBSP", "BYTE ORDER MARK", "CJK UNIFIED IDEOGRAPH-4E00",
         "HANGUL SYLLABLE GAG", "ROCKET", "DIGIT ONE", "SPACE", "LATIN CAPITAL LETTER A",
         "NOT A CHARACTER NAME", "", "LATIN CAPITAL LETTER A WITH MACRON AND GRAVE",
         "EM  DASH", " EM DASH", "LATIN SMALL LETTER SHARP S", "GREEK SMALL LETTER FINAL SIGMA"]
NAMED_EDGES = [("a\\N{EM DASH}b {{x}}", "a\u2014b y"), ("a\\N{EM DASH}b {{x}}", "a-b y"),
               ("[\\N{EM DASH}-] {{x}}", "- y"), ("[\\N{EM DASH}-] {{x}}", "\u2014 y"),
               ("\\N{EM DASH", "x"), ("\\N", "x"), ("\\Nx", "x"), ("\\N{}", "x"),
               ("[\\N]", "N"), ("(?i)\\N{LATIN SMALL LETTER SHARP S} {{x}}", "SS y"),
               ("(?i)\\N{LATIN CAPITAL LETTER A}+ {{x}}", "aA y"),
               ("[\\N{DIGIT ONE}-\\N{DIGIT THREE}]+ {{x}}", "123 y"),
               ("[\\N{DIGIT THREE}-\\N{DIGIT ONE}]", "2")]
named_edges = [format_case(f, c, m) for f, c in NAMED_EDGES for m in (False, True)]
named_cases = []
for _ in range(400):
    name = R.choice(NAMES)
    char = None
    try:
        char = __import__("unicodedata").lookup(name)
    except KeyError:
        pass
    escape = "\\N{%s}" % name
    fmt = R.choice(["%s {{x}}", "run %s {{x}}", "[%s]+ {{x}}", "(?i)%s {{x}}", "{{x}} %s",
                    "[^%s ]+ {{x}}", "%s?run {{x}}"]) % escape
    if char is not None and len(char) == 1 and R.random() < 0.7:
        word = R.choice([char, char * 2, char.upper(), char.lower(), "-", "run " + char])
    else:
        word = R.choice(["x", "-", "run", "\u2014"])
    named_cases.append(format_case(fmt, word + R.choice([" ", "  ", " "]) + R.choice(["y", "a b"]),
                                   R.random() < 0.1))
formats += named_edges + sample(named_cases, 120, outcome)


# `match_multiple: null` (StackStorm keeps None in the match dict, which executes like False)
# next to a missing key and true/false, in random alias sets.
def random_null_entry():
    entry = {"display": R.choice(["deploy <app>", "help me", "x"])} if R.random() < 0.6 else {}
    if R.random() < 0.85:
        entry["representation"] = [R.choice(STRINGS[:13]) for _ in range(R.randint(1, 2))]
    entry["match_multiple"] = R.choice([None, None, None, True, False])
    if R.random() < 0.2:
        del entry["match_multiple"]
    return entry


null_sets = []
while len(null_sets) < 600:
    aliases = [{"name": R.choice(["deploy", "status", "run", "hello", "say"]),
                "pack": R.choice(["ops", "misc", "alpha"]),
                "enabled": R.random() < 0.9,
                "formats": [random_null_entry() if R.random() < 0.7 else R.choice(STRINGS[:13])
                            for _ in range(R.randint(1, 3))]}
               for _ in range(R.randint(1, 4))]
    refs = [a["pack"] + "." + a["name"] for a in aliases]
    if len(set(refs)) == len(refs) and any(
            isinstance(f, dict) and "match_multiple" in f and f["match_multiple"] is None
            for a in aliases for f in a["formats"]):
        null_sets.append(set_case(aliases, R.choice(SET_COMMANDS)))
sets += sample(null_sets, 80, set_outcome)
write("differential.formats.jsonl", formats, "dfmt")
write("differential.sets.jsonl", sets, "dset")
print("wrote %d format cases and %d alias sets" % (len(formats), len(sets)))

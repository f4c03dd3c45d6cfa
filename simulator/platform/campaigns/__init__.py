"""The seed campaigns as flow definitions (YAML data files), and their loader.

``load_flows()`` reads every ``*.yaml`` here (or in ``directory``), checks it and compiles
it into ``FlowDef`` records for ``FlowEngine``. Campaign authors edit the YAML, never
Python; every mistake is reported with the file, the flow, the node and the field, all
at once (``FlowLoadError.errors``).

File format (``covid_quiz.yaml`` carries the same description as a comment)::

    uuid: 8b5f...                    # required, a UUID, unique over all files
    name: COVID-19 quiz              # required
    keywords: [مسابقة, quiz]         # optional: single words; the first word of a
                                     # message starts the flow (case-insensitive, Arabic
                                     # alef/ya/ta-marbuta/tatweel normalised, digits not)
    expire_after_minutes: 4320       # required: a run waiting longer than this expires
    catch_all: false                 # optional: true starts this flow for a message no
                                     # waiting run and no keyword takes (RapidPro's
                                     # "catch all" trigger; one flow at most)
    start: intro                     # optional: the first node (default: the first listed)
    meta: {series: way, index: 1}    # optional: free-form, for scenarios
    quiz:                            # optional: defaults for `question` nodes
      score_field: quiz_score        #   the contact field a right answer increments
      invalid: "أرسل رقم الإجابة فقط"  #   sent (then wait again) when the reply is no option
    nodes:
      - id: intro                    # letters, digits, _ and -
        actions:                     # run in order on entering the node
          - send: "أهلا @contact.name"          # @contact.name|urn|language|uuid|msisdn,
                                                # @fields.x, @results.x[.category], @input,
                                                # @@ for a literal @
          - set_field: {field: quiz_score, value: 0}  # a number stays a number
          - increment: {field: quiz_score, by: 1}     # `by` defaults to 1
          - save_result: {name: x, value: "@input", category: Got}
          - add_group: quiz_players
          - remove_group: lapsed
        next: q1                     # go on; a node without next/router ends the run
      - id: q1                       # a multiple-choice question: sends the text and the
        question:                    # options numbered 1..n, waits, saves the result q1
          text: "ما ...؟"             # ("correct" / "wrong" / "other", value = the number),
          options: [أ, ب, ج]         # adds 1 to score_field when right and re-asks with
          correct: 2                 # `invalid` when the reply names no option.
        next: ask                    # `correct` is the answer key (FlowDef.answer_key)
      - id: ask
        actions: [{send: "نعم أو لا؟"}]
        wait: {timeout_minutes: 1440, timeout_next: remind}   # or `wait: {}`: no timeout
        router:
          result: confirm            # optional: saved as results.confirm
          cases:                     # the first case that matches wins; each has one test
            - {has_any_word: "نعم ايوه yes", category: Yes, next: thanks}
            - {has_number_eq: 1, category: One, next: thanks}
            - {has_number_between: [2, 5], category: More, next: thanks}
            - {has_all_words: "مش فاهم", category: Lost, next: remind}
            - {has_phrase: "مش فاهم", category: Lost, next: remind}
            - {has_text: true, category: Text, next: thanks}   # any non-blank reply
            - {has_number: true, category: Num, next: thanks}  # any number
            - {regex: "^\\d{14}$", category: NationalId, next: thanks}
          other: remind              # required: where everything else goes
          other_category: Other      # optional
      - id: score
        router:                      # a router without a wait routes `operand` instead
          operand: "@fields.quiz_score"
          cases: [{has_number_eq: 10, category: Full, next: done}]
          other: done
      - id: split
        router: {random: true, cases: [{category: A, next: done}, {category: B, next: done}]}

Word tests compare normalised words (``words()``); number tests read every number in the
reply, in ASCII or Arabic-Indic digits, like RapidPro's. Checks: unknown fields, a
``next`` / ``timeout_next`` / ``other`` that names no node, unreachable nodes, loops
without a wait, ``@results.x`` with no result ``x``, keywords shared by two flows or that
are opt-out words, two catch-all flows, a timeout not shorter than the expiry, bad
regexes. A file holds one flow, or several under ``flows:`` (a series such as the 12
Wa'y messages).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeGuard

import yaml

from ..flows import (
    DEFAULT_OPT_OUT_KEYWORDS,
    Action,
    AddGroup,
    Case,
    FlowDef,
    HasAllWords,
    HasAnyWord,
    HasNumber,
    HasNumberBetween,
    HasNumberEq,
    HasPhrase,
    HasText,
    IncrementField,
    Node,
    QuizQuestion,
    Regex,
    RemoveGroup,
    Router,
    SaveResult,
    SendAction,
    SetField,
    Template,
    Test,
    Wait,
    normalize,
    reachable,
    words,
)

CAMPAIGNS_DIR: Final = Path(__file__).resolve().parent

_ID: Final = re.compile(r"[A-Za-z0-9_-]+")
_NAME: Final = re.compile(r"[a-z][a-z0-9_]*")
_FLOW_KEYS: Final = (
    "uuid",
    "name",
    "keywords",
    "expire_after_minutes",
    "catch_all",
    "start",
    "meta",
    "quiz",
    "nodes",
)
_NODE_KEYS: Final = ("id", "actions", "question", "wait", "router", "next")
_ROUTER_KEYS: Final = ("result", "operand", "cases", "other", "other_category", "random")
_TESTS: Final = (
    "has_number_eq",
    "has_number_between",
    "has_number",
    "has_any_word",
    "has_all_words",
    "has_phrase",
    "has_text",
    "regex",
)
_ACTIONS: Final = ("send", "save_result", "set_field", "increment", "add_group", "remove_group")


@dataclass(frozen=True, slots=True)
class FlowError:
    """One problem in a flow file, located as precisely as the YAML allows."""

    file: str
    flow: str | None
    node: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.flow is not None:
            where.append(f"flow {self.flow!r}")
        if self.node is not None:
            where.append(f"node {self.node!r}")
        if self.field:
            where.append(f"field {self.field!r}")
        return ": ".join(where) + ": " + self.message


class FlowLoadError(ValueError):
    """Flow files that do not check out; ``errors`` lists every problem found."""

    def __init__(self, errors: list[FlowError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def load_flows(directory: str | Path | None = None) -> list[FlowDef]:
    """Load, check and compile every ``*.yaml`` flow file in ``directory``, sorted by name.

    Default: the seed campaigns shipped next to this module. Raises ``FlowLoadError``.
    """
    folder = Path(directory) if directory is not None else CAMPAIGNS_DIR
    errors: list[FlowError] = []
    flows: list[FlowDef] = []
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        raise FlowLoadError([FlowError(str(folder), None, None, "", "no *.yaml flow files")])
    for path in paths:
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader)
        except yaml.YAMLError as exc:
            errors.append(FlowError(path.name, None, None, "", f"not valid YAML: {exc}"))
            continue
        parsed, errs = _parse_document(data, path.name)
        flows.extend(parsed)
        errors.extend(errs)
    errors.extend(_cross_check(flows))
    if errors:
        raise FlowLoadError(errors)
    return flows


def parse_flows(text: str, source: str = "<string>") -> list[FlowDef]:
    """Flows from one YAML document's text (tests, scenario files). Raises FlowLoadError."""
    try:
        data = yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        raise FlowLoadError([FlowError(source, None, None, "", f"not valid YAML: {exc}")]) from exc
    flows, errors = _parse_document(data, source)
    errors.extend(_cross_check(flows))
    if errors:
        raise FlowLoadError(errors)
    return flows


_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_document(data: Any, source: str) -> tuple[list[FlowDef], list[FlowError]]:
    errors: list[FlowError] = []
    if isinstance(data, dict) and "flows" in data:
        extra = sorted(str(k) for k in data if k != "flows")
        if extra:
            errors.append(FlowError(source, None, None, extra[0], "unknown field beside flows"))
        items = data["flows"]
        if not isinstance(items, list) or not items:
            errors.append(FlowError(source, None, None, "flows", "must be a non-empty list"))
            return [], errors
    elif isinstance(data, dict):
        items = [data]
    else:
        errors.append(FlowError(source, None, None, "", "a flow file holds a mapping"))
        return [], errors
    flows: list[FlowDef] = []
    for i, item in enumerate(items):
        parser = _FlowParser(source, i if len(items) > 1 else None)
        flow = parser.parse(item)
        errors.extend(parser.errors)
        if flow is not None:
            flows.append(flow)
    return flows, errors


def _cross_check(flows: Iterable[FlowDef]) -> list[FlowError]:
    """What no single flow can see: shared uuids and keywords, a second catch-all flow."""
    errors: list[FlowError] = []
    uuids: dict[str, FlowDef] = {}
    keywords: dict[str, FlowDef] = {}
    catch_all: FlowDef | None = None
    for flow in flows:
        if flow.catch_all:
            if catch_all is not None:
                errors.append(
                    FlowError(
                        flow.source,
                        flow.name,
                        None,
                        "catch_all",
                        f"{catch_all.name!r} ({catch_all.source}) is the catch-all flow already",
                    )
                )
            else:
                catch_all = flow
        other = uuids.setdefault(flow.uuid, flow)
        if other is not flow:
            errors.append(
                FlowError(
                    flow.source,
                    flow.name,
                    None,
                    "uuid",
                    f"{flow.uuid} is also the uuid of {other.name!r} ({other.source})",
                )
            )
        for keyword in flow.keywords:
            other = keywords.setdefault(keyword, flow)
            if other is not flow:
                errors.append(
                    FlowError(
                        flow.source,
                        flow.name,
                        None,
                        "keywords",
                        f"{keyword!r} already starts {other.name!r} ({other.source})",
                    )
                )
    return errors


class _FlowParser:
    """Checks one flow mapping and compiles it, collecting every error on the way."""

    def __init__(self, source: str, index: int | None) -> None:
        self.source = source
        self.flow_label: str | None = f"#{index}" if index is not None else None
        self.errors: list[FlowError] = []
        #: (node, field, target) for every reference to a node, checked at the end.
        self.links: list[tuple[str, str, str]] = []
        #: (node, field, result name) for every @results.x in a template.
        self.result_refs: list[tuple[str, str, str]] = []
        self.results: set[str] = set()
        self.quiz: dict[str, Any] = {}
        self.expire_minutes: float = 0.0

    def error(self, node: str | None, field: str, message: str) -> None:
        self.errors.append(FlowError(self.source, self.flow_label, node, field, message))

    # -- the flow --------------------------------------------------------------------------

    def parse(self, raw: Any) -> FlowDef | None:
        if not isinstance(raw, dict):
            self.error(None, "", "a flow is a mapping")
            return None
        name = raw.get("name")
        if isinstance(name, str) and name.strip():
            self.flow_label = name
        else:
            self.error(None, "name", "required, a non-empty text")
        self.unknown(None, raw, _FLOW_KEYS, "")
        flow_uuid = self.flow_uuid(raw.get("uuid"))
        keywords = self.keywords(raw.get("keywords", []))
        catch_all = raw.get("catch_all", False)
        if not isinstance(catch_all, bool):
            self.error(None, "catch_all", "true or false")
            catch_all = False
        expire = raw.get("expire_after_minutes")
        if not _is_number(expire) or expire <= 0:
            self.error(None, "expire_after_minutes", "required, a number of minutes > 0")
        else:
            self.expire_minutes = float(expire)
        meta = raw.get("meta", {})
        if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
            self.error(None, "meta", "a mapping with text keys")
            meta = {}
        self.quiz = self.quiz_defaults(raw.get("quiz", {}))

        raw_nodes = raw.get("nodes")
        if not isinstance(raw_nodes, list) or not raw_nodes:
            self.error(None, "nodes", "required, a non-empty list")
            return None
        nodes: dict[str, Node] = {}
        questions: list[QuizQuestion] = []
        declared: list[str] = []
        for i, raw_node in enumerate(raw_nodes):
            for node in self.node(raw_node, i, questions, declared):
                if node.id in nodes:
                    self.error(node.id, "id", "two nodes have this id")
                nodes[node.id] = node
        start = raw.get("start", declared[0] if declared else None)
        if not isinstance(start, str) or start not in nodes:
            self.error(None, "start", f"no node named {start!r}")
            return None
        for node_id, field_name, target in self.links:
            if target not in nodes:
                self.error(node_id, field_name, f"no node named {target!r}")
        for node_id, field_name, result in self.result_refs:
            if result not in self.results:
                self.error(node_id, field_name, f"no result named {result!r} in this flow")
        if self.errors or flow_uuid is None or not isinstance(name, str):
            return None
        flow = FlowDef(
            uuid=flow_uuid,
            name=name,
            keywords=keywords,
            expire_after_minutes=self.expire_minutes,
            start=start,
            nodes=nodes,
            questions=tuple(questions),
            meta=dict(meta),
            source=self.source,
            catch_all=catch_all,
        )
        self.check_graph(flow, declared)
        return None if self.errors else flow

    def flow_uuid(self, value: Any) -> str | None:
        if value is None:
            self.error(None, "uuid", "required, a UUID")
            return None
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            self.error(None, "uuid", f"{value!r} is not a UUID")
            return None

    def keywords(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list):
            self.error(None, "keywords", "a list of words")
            return ()
        out: list[str] = []
        opt_out = {normalize(k) for k in DEFAULT_OPT_OUT_KEYWORDS}
        for i, keyword in enumerate(value):
            found = words(str(keyword)) if isinstance(keyword, str | int) else []
            if len(found) != 1 or found[0] != normalize(str(keyword).strip()):
                self.error(None, f"keywords[{i}]", f"{keyword!r} is not a single word")
            elif found[0] in opt_out:
                self.error(None, f"keywords[{i}]", f"{keyword!r} is an opt-out word")
            elif found[0] not in out:
                out.append(found[0])
        return tuple(out)

    def quiz_defaults(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.error(None, "quiz", "a mapping (score_field, invalid)")
            return {}
        self.unknown(None, value, ("score_field", "invalid"), "quiz.")
        return value

    def unknown(self, node: str | None, raw: dict[Any, Any], known: Iterable[str], at: str) -> None:
        allowed = tuple(known)
        for key in raw:
            if key not in allowed:
                self.error(node, f"{at}{key}", f"unknown field (expected {', '.join(allowed)})")

    # -- nodes -----------------------------------------------------------------------------

    def node(
        self, raw: Any, index: int, questions: list[QuizQuestion], declared: list[str]
    ) -> list[Node]:
        if not isinstance(raw, dict):
            self.error(f"#{index}", "", "a node is a mapping")
            return []
        node_id = raw.get("id")
        if not isinstance(node_id, str) or not _ID.fullmatch(node_id):
            self.error(f"#{index}", "id", "required: letters, digits, _ and - only")
            return []
        declared.append(node_id)
        self.unknown(node_id, raw, _NODE_KEYS, "")
        actions = self.actions(node_id, raw.get("actions", []))
        if "question" in raw:
            for key in ("router", "wait"):
                if key in raw:
                    self.error(node_id, key, "a question node makes its own wait and router")
            return self.question(node_id, raw["question"], raw.get("next"), actions, questions)
        wait = self.wait(node_id, raw["wait"]) if "wait" in raw else None
        router = self.router(node_id, raw["router"], "wait" in raw) if "router" in raw else None
        nxt = raw.get("next")
        if nxt is not None:
            if router is not None:
                self.error(node_id, "next", "a node with a router leaves by the router's cases")
            self.link(node_id, "next", nxt)
        if wait is not None and "router" not in raw:
            self.error(node_id, "router", "a node that waits needs a router for the reply")
        return [Node(node_id, actions, wait, router, nxt if isinstance(nxt, str) else None)]

    def link(self, node_id: str, field_name: str, target: Any) -> None:
        if isinstance(target, str):
            self.links.append((node_id, field_name, target))
        else:
            self.error(node_id, field_name, "a node id")

    def wait(self, node_id: str, raw: Any) -> Wait | None:
        if raw is None or raw is True:
            return Wait()
        if not isinstance(raw, dict):
            self.error(node_id, "wait", "a mapping (timeout_minutes, timeout_next) or {}")
            return None
        self.unknown(node_id, raw, ("timeout_minutes", "timeout_next"), "wait.")
        minutes, nxt = raw.get("timeout_minutes"), raw.get("timeout_next")
        if minutes is None and nxt is None:
            return Wait()
        if not _is_number(minutes) or minutes <= 0:
            self.error(node_id, "wait.timeout_minutes", "a number of minutes > 0")
            return None
        if self.expire_minutes and minutes >= self.expire_minutes:
            self.error(
                node_id,
                "wait.timeout_minutes",
                f"{minutes} is not shorter than expire_after_minutes ({self.expire_minutes:g})",
            )
        if nxt is None:
            self.error(node_id, "wait.timeout_next", "required with timeout_minutes")
            return None
        self.link(node_id, "wait.timeout_next", nxt)
        return Wait(float(minutes) * 60.0, str(nxt))

    def router(self, node_id: str, raw: Any, waits: bool) -> Router | None:
        if not isinstance(raw, dict):
            self.error(node_id, "router", "a mapping (result, cases, other, ...)")
            return None
        self.unknown(node_id, raw, _ROUTER_KEYS, "router.")
        result = raw.get("result")
        if result is not None:
            if isinstance(result, str) and _NAME.fullmatch(result):
                self.results.add(result)
            else:
                self.error(node_id, "router.result", "a name: a-z, 0-9 and _")
                result = None
        operand: Template | None = None
        if "operand" in raw:
            if waits:
                self.error(node_id, "router.operand", "a router after a wait routes the reply")
            operand = self.template(node_id, "router.operand", raw["operand"])
        is_random = raw.get("random", False)
        if not isinstance(is_random, bool):
            self.error(node_id, "router.random", "true or false")
            is_random = False
        if operand is None and not waits and not is_random:
            self.error(node_id, "router.operand", "required for a router without a wait")
        raw_cases = raw.get("cases", [])
        if not isinstance(raw_cases, list):
            self.error(node_id, "router.cases", "a list of cases")
            raw_cases = []
        cases = [
            self.case(node_id, f"router.cases[{i}]", c, is_random) for i, c in enumerate(raw_cases)
        ]
        exits: dict[str, str] = {}
        for i, case in enumerate(cases):
            if case is not None and exits.setdefault(case.category, case.next) != case.next:
                self.error(
                    node_id,
                    f"router.cases[{i}].next",
                    f"category {case.category!r} already leads to {exits[case.category]!r}",
                )
        other = raw.get("other")
        other_category = raw.get("other_category", "Other")
        if not isinstance(other_category, str) or not other_category:
            self.error(node_id, "router.other_category", "a non-empty text")
            other_category = "Other"
        if is_random:
            if other is not None:
                self.error(node_id, "router.other", "a random router has no other")
            if not raw_cases:
                self.error(node_id, "router.cases", "a random router needs cases")
        elif other is None:
            self.error(node_id, "router.other", "required: where unmatched replies go")
        else:
            self.link(node_id, "router.other", other)
        return Router(
            cases=tuple(c for c in cases if c is not None),
            other_next=other if isinstance(other, str) else None,
            other_category=other_category,
            result=result,
            operand=operand,
            random=is_random,
        )

    def case(self, node_id: str, at: str, raw: Any, is_random: bool) -> Case | None:
        if not isinstance(raw, dict):
            self.error(node_id, at, "a case is a mapping")
            return None
        category, nxt = raw.get("category"), raw.get("next")
        ok = True
        if not isinstance(category, str) or not category:
            self.error(node_id, f"{at}.category", "required, a non-empty text")
            ok = False
        if nxt is None:
            self.error(node_id, f"{at}.next", "required, a node id")
            ok = False
        else:
            self.link(node_id, f"{at}.next", nxt)
        tests = [k for k in raw if k in _TESTS]
        self.unknown(node_id, raw, (*_TESTS, "category", "next"), f"{at}.")
        test: Test | None = None
        if is_random:
            if tests:
                self.error(node_id, f"{at}.{tests[0]}", "a random router's cases have no test")
        elif len(tests) != 1:
            self.error(node_id, at, f"needs exactly one test of {', '.join(_TESTS)}")
            ok = False
        else:
            test = self.test(node_id, f"{at}.{tests[0]}", tests[0], raw[tests[0]])
            ok = ok and test is not None
        if not ok or not isinstance(category, str) or not isinstance(nxt, str):
            return None
        return Case(test, category, nxt)

    def test(self, node_id: str, at: str, kind: str, arg: Any) -> Test | None:
        if kind == "has_number_eq":
            if _is_number(arg):
                return HasNumberEq(float(arg))
            self.error(node_id, at, "a number")
        elif kind == "has_number_between":
            if (
                isinstance(arg, list)
                and len(arg) == 2
                and all(_is_number(a) for a in arg)
                and arg[0] <= arg[1]
            ):
                return HasNumberBetween(float(arg[0]), float(arg[1]))
            self.error(node_id, at, "[low, high], two numbers, low <= high")
        elif kind in ("has_number", "has_text"):
            if arg is True:
                return HasNumber() if kind == "has_number" else HasText()
            self.error(node_id, at, "true")
        elif kind in ("has_any_word", "has_all_words", "has_phrase"):
            texts = arg if isinstance(arg, list) else [arg]
            if all(isinstance(t, str | int) and not isinstance(t, bool) for t in texts):
                found = [w for t in texts for w in words(str(t))]
                if found:
                    if kind == "has_phrase":
                        return HasPhrase(" ".join(found))
                    cls = HasAnyWord if kind == "has_any_word" else HasAllWords
                    return cls(frozenset(found))
            self.error(node_id, at, "words: a text or a list of texts")
        else:  # regex
            if isinstance(arg, str):
                try:
                    return Regex(re.compile(arg, re.IGNORECASE))
                except re.error as exc:
                    self.error(node_id, at, f"bad regular expression: {exc}")
            else:
                self.error(node_id, at, "a regular expression")
        return None

    # -- actions ---------------------------------------------------------------------------

    def actions(self, node_id: str, raw: Any) -> tuple[Action, ...]:
        if not isinstance(raw, list):
            self.error(node_id, "actions", "a list of actions")
            return ()
        out: list[Action] = []
        for i, item in enumerate(raw):
            at = f"actions[{i}]"
            if not isinstance(item, dict) or len(item) != 1:
                self.error(node_id, at, f"one of {', '.join(_ACTIONS)}")
                continue
            ((kind, arg),) = item.items()
            action = self.action(node_id, f"{at}.{kind}", kind, arg)
            if action is not None:
                out.append(action)
        return tuple(out)

    def action(self, node_id: str, at: str, kind: Any, arg: Any) -> Action | None:
        if kind == "send":
            text = self.template(node_id, at, arg)
            return SendAction(text) if text is not None else None
        if kind in ("add_group", "remove_group"):
            if isinstance(arg, str) and arg.strip():
                return AddGroup(arg.strip()) if kind == "add_group" else RemoveGroup(arg.strip())
            self.error(node_id, at, "a group name")
            return None
        if kind not in ("save_result", "set_field", "increment"):
            self.error(node_id, at, f"unknown action (expected {', '.join(_ACTIONS)})")
            return None
        if not isinstance(arg, dict):
            self.error(node_id, at, "a mapping")
            return None
        if kind == "save_result":
            self.unknown(node_id, arg, ("name", "value", "category"), f"{at}.")
            name, category = arg.get("name"), arg.get("category", "")
            value = self.template(node_id, f"{at}.value", arg.get("value"))
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                self.error(node_id, f"{at}.name", "a name: a-z, 0-9 and _")
                return None
            if not isinstance(category, str):
                self.error(node_id, f"{at}.category", "a text")
                return None
            self.results.add(name)
            return SaveResult(name, value, category) if value is not None else None
        field_name = arg.get("field")
        if not isinstance(field_name, str) or not _NAME.fullmatch(field_name):
            self.error(node_id, f"{at}.field", "a field key: a-z, 0-9 and _")
            return None
        if kind == "increment":
            self.unknown(node_id, arg, ("field", "by"), f"{at}.")
            by = arg.get("by", 1)
            if not _is_number(by):
                self.error(node_id, f"{at}.by", "a number")
                return None
            return IncrementField(field_name, by)
        self.unknown(node_id, arg, ("field", "value"), f"{at}.")
        value = arg.get("value")
        if _is_number(value):
            return SetField(field_name, value)
        text = self.template(node_id, f"{at}.value", value)
        return SetField(field_name, text) if text is not None else None

    def template(self, node_id: str, at: str, raw: Any) -> Template | None:
        if not isinstance(raw, str):
            self.error(node_id, at, "a text")
            return None
        try:
            text = Template.compile(raw)
        except ValueError as exc:
            self.error(node_id, at, str(exc))
            return None
        for name in sorted(text.result_names):
            self.result_refs.append((node_id, at, name))
        return text

    # -- questions -------------------------------------------------------------------------

    def question(
        self,
        node_id: str,
        raw: Any,
        nxt: Any,
        actions: tuple[Action, ...],
        questions: list[QuizQuestion],
    ) -> list[Node]:
        """Expand a multiple-choice question into ask / wait / correct / invalid nodes."""
        if not isinstance(raw, dict):
            self.error(node_id, "question", "a mapping (text, options, correct)")
            return []
        self.unknown(
            node_id, raw, ("text", "options", "correct", "score_field", "invalid"), "question."
        )
        ok = True
        if not _NAME.fullmatch(node_id):
            self.error(node_id, "id", "a question's id names its result: a-z, 0-9 and _")
            ok = False
        text, options, correct = raw.get("text"), raw.get("options"), raw.get("correct")
        if not isinstance(text, str) or not text.strip():
            self.error(node_id, "question.text", "required, a text")
            ok = False
        if (
            not isinstance(options, list)
            or not 2 <= len(options) <= 9
            or not all(isinstance(o, str) and o.strip() for o in options)
        ):
            self.error(node_id, "question.options", "2 to 9 texts")
            ok = False
            options = []
        if (
            not isinstance(correct, int)
            or isinstance(correct, bool)
            or not 1 <= correct <= max(len(options), 1)
        ):
            self.error(
                node_id, "question.correct", f"the right option's number, 1 to {len(options)}"
            )
            ok = False
        score_field = raw.get("score_field", self.quiz.get("score_field"))
        if not isinstance(score_field, str) or not _NAME.fullmatch(score_field):
            self.error(node_id, "question.score_field", "required here or in quiz: a field key")
            ok = False
        invalid = raw.get("invalid", self.quiz.get("invalid"))
        if not isinstance(invalid, str) or not invalid.strip():
            self.error(node_id, "question.invalid", "required here or in quiz: a text")
            ok = False
        if nxt is None:
            self.error(node_id, "next", "required after a question")
            ok = False
        else:
            self.link(node_id, "next", nxt)
        if not ok or not isinstance(text, str) or not isinstance(nxt, str):
            return []
        assert isinstance(correct, int) and isinstance(score_field, str)
        assert isinstance(invalid, str)
        full = text.rstrip() + "".join(f"\n{i}- {o.strip()}" for i, o in enumerate(options, 1))
        ask = self.template(node_id, "question.text", full)
        retry = self.template(node_id, "question.invalid", invalid)
        if ask is None or retry is None:
            return []
        self.results.add(node_id)
        questions.append(QuizQuestion(node_id, node_id, text, tuple(options), correct, score_field))
        wait_id, right_id, invalid_id = (
            f"{node_id}.wait",
            f"{node_id}.correct",
            f"{node_id}.invalid",
        )
        router = Router(
            cases=(
                Case(HasNumberEq(float(correct)), "correct", right_id),
                Case(HasNumberBetween(1.0, float(len(options))), "wrong", nxt),
            ),
            other_next=invalid_id,
            other_category="other",
            result=node_id,
        )
        return [
            Node(node_id, (*actions, SendAction(ask)), next=wait_id),
            Node(wait_id, wait=Wait(), router=router),
            Node(right_id, (IncrementField(score_field, 1),), next=nxt),
            Node(invalid_id, (SendAction(retry),), next=wait_id),
        ]

    # -- the graph -------------------------------------------------------------------------

    def check_graph(self, flow: FlowDef, declared: list[str]) -> None:
        """Every node reachable; no loop that never waits (it would spin forever)."""
        seen = reachable(flow)
        for node_id in declared:
            if node_id not in seen:
                self.error(node_id, "id", f"unreachable from the start node {flow.start!r}")
        # loops among nodes that do not wait
        state: dict[str, int] = {}  # 1 on the stack, 2 done
        for root in declared:
            if state.get(root):
                continue
            stack: list[tuple[str, list[str]]] = [(root, list(self.quick_exits(flow, root)))]
            state[root] = 1
            trail = [root]
            while stack:
                node_id, todo = stack[-1]
                if not todo:
                    stack.pop()
                    trail.pop()
                    state[node_id] = 2
                    continue
                nxt = todo.pop()
                if state.get(nxt) == 1:
                    loop = [*trail[trail.index(nxt) :], nxt]
                    self.error(
                        _user_node(nxt),
                        "next",
                        f"loops back without a wait: {' -> '.join(map(_user_node, loop))}",
                    )
                    return
                if not state.get(nxt):
                    state[nxt] = 1
                    trail.append(nxt)
                    stack.append((nxt, list(self.quick_exits(flow, nxt))))

    @staticmethod
    def quick_exits(flow: FlowDef, node_id: str) -> tuple[str, ...]:
        """Where a node goes without waiting for a reply."""
        node = flow.nodes.get(node_id)
        if node is None or node.wait is not None:
            return ()
        return node.exits()


def _user_node(node_id: str) -> str:
    return node_id.split(".", 1)[0]


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def answer_keys(flows: Iterable[FlowDef]) -> Mapping[str, dict[str, int]]:
    """Flow uuid → {question result: correct option} for every quiz flow."""
    return {f.uuid: f.answer_key for f in flows if f.questions}

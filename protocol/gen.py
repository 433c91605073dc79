#!/usr/bin/env python3
"""gen.py - generate runnel's C message codecs from Kafka's JSON schemas.

Usage: gen.py SCHEMA_DIR OUT_DIR

SCHEMA_DIR holds message/*.json (and records/*.json) in the format Kafka's
own generator reads: comments with //, validVersions, flexibleVersions,
fields with versions, nullableVersions, taggedVersions/tag, default,
ignorable, nested struct fields and commonStructs.

For every API a broker serves (listeners containing "broker" or "zkBroker"),
for the request and response headers, for the "data" schemas (consumer
protocol subscription/assignment and the like) and for the internal topic
record schemas of records/*.json (the keys and values of __consumer_offsets
and __transaction_state: OffsetCommitKey/Value, GroupMetadataKey/Value, ...)
it writes, per API or schema:

  OUT_DIR/<api>.h      structs, one per schema struct, and prototypes
  OUT_DIR/<api>.c      init, decode, size and encode for every version
  OUT_DIR/fill_<api>.c random value fillers for the round-trip tests

and OUT_DIR/api_table.{h,c} (key -> name, versions, codec entry points).

The C is committed; a build never runs this script. It uses only the Python
standard library.
"""
import glob
import json
import os
import re
import sys

MAXV = 0x7FFF

C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double",
    "else", "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long",
    "register", "restrict", "return", "short", "signed", "sizeof", "static", "struct",
    "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "bool",
    "true", "false", "errno", "count", "items",
}

PRIM = {
    # type: (ctype, fixed wire size, reader, writer)
    "int8": ("int8_t", 1, "kr_i8", "kw_i8"),
    "int16": ("int16_t", 2, "kr_i16", "kw_i16"),
    "uint16": ("uint16_t", 2, "kr_u16", "kw_u16"),
    "int32": ("int32_t", 4, "kr_i32", "kw_i32"),
    "uint32": ("uint32_t", 4, "kr_u32", "kw_u32"),
    "int64": ("int64_t", 8, "kr_i64", "kw_i64"),
    "float64": ("double", 8, "kr_f64", "kw_f64"),
    "bool": ("bool", 1, "kr_bool", "kw_bool"),
    "uuid": ("struct kuuid", 16, "kr_uuid", "kw_uuid"),
}
PRIM_ARRAY = {
    "int8": "struct kint8_array",
    "int16": "struct kint16_array",
    "int32": "struct kint32_array",
    "int64": "struct kint64_array",
    "uuid": "struct kuuid_array",
    "string": "struct kstr_array",
}


class UnsupportedSchema(SystemExit):
    """A schema uses a construct the generator does not code (yet)."""


def strip_comments(text):
    """Removes // comments outside of string literals."""
    out = []
    i, n = 0, len(text)
    in_str = False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_str = False
            i += 1
            continue
        if c == '"':
            in_str = True
            out.append(c)
            i += 1
            continue
        if c == "/" and i + 1 < n and text[i + 1] == "/":
            while i < n and text[i] != "\n":
                i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parse_versions(s):
    """'3+' -> (3, MAXV); '1-4' -> (1, 4); '2' -> (2, 2); 'none'/None -> None."""
    if s is None:
        return None
    s = s.strip()
    if s == "none" or s == "":
        return None
    if s.endswith("+"):
        return (int(s[:-1]), MAXV)
    if "-" in s:
        lo, hi = s.split("-")
        return (int(lo), int(hi))
    return (int(s), int(s))


def intersect(a, b):
    if a is None or b is None:
        return None
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo <= hi else None


def vcond(var, rng, valid):
    """C condition for `var in rng`, simplified using the valid version range."""
    if rng is None:
        return "0"
    r = intersect(rng, valid)
    if r is None:
        return "0"
    lo, hi = r
    parts = []
    if lo > valid[0]:
        parts.append(f"{var} >= {lo}")
    if hi < valid[1]:
        parts.append(f"{var} <= {hi}")
    if not parts:
        return "1"
    return " && ".join(parts)


def snake(name):
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.lower()


def field_cname(name):
    s = snake(name)
    return s + "_" if s in C_KEYWORDS else s


class Field:
    def __init__(self, js, msg, valid):
        self.js = js
        self.name = js["name"]
        self.cname = field_cname(self.name)
        t = js["type"]
        self.is_array = t.startswith("[]")
        self.elem = t[2:] if self.is_array else t
        self.is_struct = self.elem not in PRIM and self.elem not in ("string", "bytes", "records")
        self.versions = parse_versions(js.get("versions"))
        self.nullable = parse_versions(js.get("nullableVersions"))
        self.tagged = parse_versions(js.get("taggedVersions"))
        self.tag = js.get("tag")
        self.ignorable = bool(js.get("ignorable", False))
        self.default = js.get("default")
        self.flexible_override = "flexibleVersions" in js
        self.flexible = parse_versions(js.get("flexibleVersions")) if self.flexible_override else None
        self.valid = valid
        self.struct = None
        if self.is_struct:
            self.struct = msg.define_struct(self.elem, js.get("fields"), valid)
        if self.tagged is not None:
            assert self.tag is not None, self.name
            if self.is_struct and not self.is_array and self.nullable is not None:
                # Kafka marks these with a varint, not the int8 of regular
                # nullable structs; no schema has one yet, so refuse rather
                # than guess.
                raise UnsupportedSchema(f"{msg.name}.{self.name}: tagged nullable struct fields are not supported")
        # Versions where the field is written in the regular sequence / as a tag.
        if self.tagged is not None:
            self.regular = None
            if self.versions and self.versions[0] < self.tagged[0]:
                self.regular = (self.versions[0], self.tagged[0] - 1)
            self.tagged_in = intersect(self.versions, self.tagged)
        else:
            self.regular = self.versions
            self.tagged_in = None

    def default_is_null(self):
        return self.default == "null"

    def ctype(self):
        if self.is_array:
            if self.is_struct:
                return f"struct {{ int32_t count; struct {self.struct.cname} *items; }}"
            return PRIM_ARRAY[self.elem]
        if self.is_struct:
            return f"struct {self.struct.cname}"
        if self.elem == "string":
            return "struct kstr"
        if self.elem in ("bytes", "records"):
            return "struct kbytes"
        return PRIM[self.elem][0]

    def default_literal(self):
        """C initialiser for scalar fields."""
        d = self.default
        e = self.elem
        if e == "bool":
            return "true" if d is not None and str(d).lower() == "true" else "false"
        if e == "uuid":
            return None
        if e == "float64":
            return f"{float(d) if d is not None else 0.0!r}"
        if e in PRIM:
            if d is None or d == "":
                return "0"
            v = int(str(d), 0)
            ct = PRIM[e][0]
            if e == "int64":
                # -2^63 has no literal (it is the negation of an overflowing one).
                return f"(int64_t){v}LL" if v != -(2 ** 63) else "INT64_MIN"
            if e == "int32" and v == -2147483648:
                return "INT32_MIN"
            return f"({ct}){v}"
        return None


class Struct:
    def __init__(self, name, cname, valid):
        self.name = name
        self.cname = cname
        self.valid = valid
        self.fields = []
        self.defined = False


class Message:
    def __init__(self, js, fname):
        self.js = js
        self.name = js["name"]
        self.cname = snake(self.name)
        self.kind = js["type"]
        self.api_key = js.get("apiKey")
        self.valid = parse_versions(js["validVersions"])
        self.flexible = parse_versions(js.get("flexibleVersions"))
        self.structs = []               # definition order: children before parents
        self.struct_by_name = {}
        self.common = {c["name"]: c for c in js.get("commonStructs", [])}
        self.top = Struct(self.name, self.cname, self.valid)
        self.top.fields = [Field(f, self, self.valid) for f in js.get("fields", [])]
        self.structs.append(self.top)
        self.top.defined = True

    def define_struct(self, name, fields, valid):
        if name in self.struct_by_name:
            s = self.struct_by_name[name]
            if fields is not None and s.defined:
                pass  # same struct used twice; Kafka requires identical definitions
            if fields is None or s.defined:
                return s
        else:
            cname = snake(name)
            prefix = self.cname
            if not cname.startswith(prefix):
                cname = f"{prefix}_{cname}"
            s = Struct(name, cname, valid)
            self.struct_by_name[name] = s
        if fields is None:
            if name not in self.common:
                raise SystemExit(f"{self.name}: struct {name} has no fields and is not a common struct")
            fields = self.common[name]["fields"]
        s.defined = True
        s.fields = [Field(f, self, valid) for f in fields]
        self.structs.append(s)
        return s


class Emitter:
    def __init__(self):
        self.lines = []
        self.depth = 0

    def __call__(self, line=""):
        if line.startswith("}"):
            self.depth -= 1
        self.lines.append(("\t" * self.depth + line) if line else "")
        if line.endswith("{"):
            self.depth += 1

    def text(self):
        return "\n".join(self.lines) + "\n"


# ---------------------------------------------------------------- C emission

class Gen:
    def __init__(self, msg):
        self.m = msg
        self.valid = msg.valid
        self.flex = msg.flexible

    def flex_expr(self, f):
        if f.flexible_override:
            return "(" + vcond("version", f.flexible, self.valid) + ")"
        return "flex"

    def nullable_expr(self, f):
        return "(" + vcond("version", f.nullable, self.valid) + ")"

    # -- default checks (used for tagged fields and version checks)
    def is_default_expr(self, f, lv):
        e = f.elem
        if f.is_array:
            return f"({lv}.count < 0)" if f.default_is_null() else f"({lv}.count == 0)"
        if f.is_struct:
            if f.nullable is not None:
                return f"({lv}_is_null)" if f.default_is_null() else f"(!{lv}_is_null && {f.struct.cname}_is_default(&{lv}))"
            return f"{f.struct.cname}_is_default(&{lv})"
        if e == "string":
            if f.default_is_null():
                return f"({lv}.len < 0)"
            d = f.default or ""
            if d == "":
                return f"({lv}.len == 0)"
            return f"kstr_eq_cstr({lv}, {json.dumps(d)})"
        if e in ("bytes", "records"):
            return f"({lv}.len < 0)" if f.default_is_null() else f"({lv}.len == 0)"
        if e == "uuid":
            return f"kuuid_is_zero({lv})"
        return f"({lv} == {f.default_literal()})"

    # -- init
    def emit_init(self, em, s):
        em(f"void {s.cname}_init(struct {s.cname} *m)")
        em("{")
        em("memset(m, 0, sizeof(*m));")
        for f in s.fields:
            lv = f"m->{f.cname}"
            if f.is_array:
                if f.default_is_null():
                    em(f"{lv}.count = -1;")
            elif f.is_struct:
                em(f"{f.struct.cname}_init(&{lv});")
                if f.nullable is not None and f.default_is_null():
                    em(f"{lv}_is_null = true;")
            elif f.elem == "string":
                if f.default_is_null():
                    em(f"{lv} = KSTR_NULL;")
                else:
                    d = f.default or ""
                    em(f"{lv} = (struct kstr){{ {json.dumps(d)}, {len(d.encode())} }};")
            elif f.elem in ("bytes", "records"):
                if f.default_is_null():
                    em(f"{lv} = KBYTES_NULL;")
            elif f.elem == "uuid":
                pass
            else:
                lit = f.default_literal()
                if lit not in ("0", "false", "0.0", "(int8_t)0", "(int16_t)0", "(int32_t)0",
                               "(int64_t)0LL", "(uint16_t)0", "(uint32_t)0"):
                    em(f"{lv} = {lit};")
        em("}")
        em()

    def emit_is_default(self, em, s):
        em(f"bool {s.cname}_is_default(const struct {s.cname} *m)")
        em("{")
        conds = [self.is_default_expr(f, f"m->{f.cname}") for f in s.fields]
        if not conds:
            em("(void)m;")
            em("return true;")
        else:
            em("return " + ("\n\t\t&& ".join(conds)) + ";")
        em("}")
        em()

    # -- read
    def emit_read_value(self, em, f, lv, rd, flex, nullable, depth, elem_only=False):
        e = f.elem
        if f.is_array and not elem_only:
            n = f"n{depth}"
            i = f"i{depth}"
            em("{")
            em(f"int64_t {n} = {flex} ? (int64_t)kr_uvarint({rd}) - 1 : (int64_t)kr_i32({rd});")
            em(f"if ({rd}->err)")
            em("\treturn -EBADMSG;")
            em(f"if ({n} < 0) {{")
            em(f"if ({n} != -1 || !{nullable})")
            em(f"\treturn kr_fail({rd}), -EBADMSG;")
            em(f"{lv}.count = -1;")
            em(f"{lv}.items = NULL;")
            em("} else {")
            minsz = 1
            if not f.is_struct and e in PRIM:
                minsz = PRIM[e][1]
            em(f"if (!kr_check_count({rd}, {n}, {minsz}))")
            em("\treturn -EBADMSG;")
            em(f"{lv}.count = (int32_t){n};")
            em(f"{lv}.items = NULL;")
            em(f"if ({n} > 0) {{")
            em(f"{lv}.items = arena_alloc(a, (size_t){n} * sizeof(*{lv}.items));")
            em(f"if (!{lv}.items)")
            em("\treturn -ENOMEM;")
            em("}")
            em(f"for (int64_t {i} = 0; {i} < {n}; {i}++) {{")
            self.emit_read_value(em, f, f"{lv}.items[{i}]", rd, flex, "0", depth + 1, elem_only=True)
            em("}")
            em("}")
            em("}")
            return
        if f.is_struct:
            sc = f.struct.cname
            if not elem_only and f.nullable is not None:
                # The int8 presence marker exists only in the versions
                # where the struct is nullable.
                em(f"if ({nullable} && kr_i8({rd}) < 0) {{")
                em(f"{lv}_is_null = true;")
                em("} else {")
                em(f"{lv}_is_null = false;")
                em(f"int rc = {sc}_read({rd}, a, version, &{lv});")
                em("if (rc < 0)")
                em("\treturn rc;")
                em("}")
            else:
                em("{")
                em(f"int rc = {sc}_read({rd}, a, version, &{lv});")
                em("if (rc < 0)")
                em("\treturn rc;")
                em("}")
            return
        if e == "string" or e in ("bytes", "records"):
            is_str = e == "string"
            lenfn = "kr_len16" if is_str else "kr_len32"
            em("{")
            em(f"int32_t len = {flex} ? kr_compact_len({rd}) : {lenfn}({rd});")
            if is_str:
                # Kafka refuses a string longer than 0x7fff in either
                # encoding; only the int16 prefix enforces it by itself.
                em("if (len > 0x7fff)")
                em(f"\treturn kr_fail({rd}), -EBADMSG;")
            em("if (len == -1) {")
            em(f"if (!{nullable})")
            em(f"\treturn kr_fail({rd}), -EBADMSG;")
            em(f"{lv} = {'KSTR_NULL' if is_str else 'KBYTES_NULL'};")
            em("} else if (len >= 0) {")
            cast = "(const char *)" if is_str else ""
            em(f"{lv}.ptr = {cast}kr_take({rd}, (size_t)len);")
            em(f"{lv}.len = len;")
            em("}")
            em("}")
            return
        em(f"{lv} = {PRIM[e][2]}({rd});")

    def emit_read(self, em, s):
        em(f"static int {s.cname}_read(struct kreader *r, struct arena *a, int16_t version, struct {s.cname} *m)")
        em("{")
        em(f"{s.cname}_init(m);")
        uses_flex = self.flex is not None
        em(f"bool flex = {vcond('version', self.flex, self.valid)};")
        em("(void)flex; (void)a;")
        for f in s.fields:
            c = vcond("version", f.regular, self.valid)
            if c == "0":
                continue
            em(f"if ({c}) {{")
            self.emit_read_value(em, f, f"m->{f.cname}", "r", self.flex_expr(f), self.nullable_expr(f), 0)
            em("}")
        if uses_flex:
            tagged = [f for f in s.fields if f.tagged_in is not None]
            em("if (flex) {")
            em("uint32_t ntags = kr_uvarint(r);")
            em("if (!kr_check_count(r, ntags, 2))")
            em("\treturn -EBADMSG;")
            em("for (uint32_t t = 0; t < ntags; t++) {")
            em("uint32_t tag = kr_uvarint(r);")
            em("uint32_t size = kr_uvarint(r);")
            em("const uint8_t *body = kr_take(r, size);")
            em("if (r->err)")
            em("\treturn -EBADMSG;")
            em("struct kreader sub;")
            em("kr_init(&sub, body, size);")
            em("(void)sub;")
            if tagged:
                em("switch (tag) {")
                for f in tagged:
                    em(f"case {f.tag}:")
                    em(f"if ({vcond('version', f.tagged_in, self.valid)}) {{")
                    self.emit_read_value(em, f, f"m->{f.cname}", "(&sub)", "1", self.nullable_expr(f), 0)
                    em("if (sub.err)")
                    em("\treturn kr_fail(r), -EBADMSG;")
                    em("}")
                    em("break;")
                em("default:")
                em("break;")
                em("}")
            else:
                em("(void)tag;")
            em("}")
            em("}")
        em("return r->err ? -EBADMSG : 0;")
        em("}")
        em()

    # -- size
    def size_value(self, em, f, lv, flex, nullable, depth, acc, elem_only=False):
        """Emits code adding the encoded size of lv to acc; returns -EINVAL on
        values the version cannot carry."""
        e = f.elem
        if f.is_array and not elem_only:
            i = f"i{depth}"
            em(f"if ({lv}.count < 0) {{")
            em(f"if (!{nullable})")
            em("\treturn -EINVAL;")
            em(f"{acc} += {flex} ? 1 : 4;")
            em("} else {")
            em(f"{acc} += {flex} ? (int64_t)kw_uvarint_size((uint32_t){lv}.count + 1) : 4;")
            if not f.is_struct and e in PRIM:
                em(f"{acc} += (int64_t){lv}.count * {PRIM[e][1]};")
            else:
                em(f"for (int32_t {i} = 0; {i} < {lv}.count; {i}++) {{")
                self.size_value(em, f, f"{lv}.items[{i}]", flex, "0", depth + 1, acc, elem_only=True)
                em("}")
            em("}")
            return
        if f.is_struct:
            sc = f.struct.cname
            if not elem_only and f.nullable is not None:
                em(f"if ({lv}_is_null) {{")
                em(f"if (!{nullable})")
                em("\treturn -EINVAL;")
                em(f"{acc} += 1;")
                em("} else {")
                em(f"int64_t sub = {sc}_size_in(&{lv}, version);")
                em("if (sub < 0)")
                em("\treturn sub;")
                em(f"{acc} += ({nullable} ? 1 : 0) + sub;")
                em("}")
            else:
                em("{")
                em(f"int64_t sub = {sc}_size_in(&{lv}, version);")
                em("if (sub < 0)")
                em("\treturn sub;")
                em(f"{acc} += sub;")
                em("}")
            return
        if e == "string" or e in ("bytes", "records"):
            em(f"if ({lv}.len < 0) {{")
            em(f"if (!{nullable})")
            em("\treturn -EINVAL;")
            em(f"{acc} += {flex} ? 1 : {2 if e == 'string' else 4};")
            em("} else {")
            if e == "string":
                em(f"if ({lv}.len > 0x7fff)")
                em("\treturn -EINVAL;")
                em(f"{acc} += ({flex} ? (int64_t)kw_uvarint_size((uint32_t){lv}.len + 1) : 2) + {lv}.len;")
            else:
                em(f"{acc} += ({flex} ? (int64_t)kw_uvarint_size((uint32_t){lv}.len + 1) : 4) + {lv}.len;")
            em("}")
            return
        em(f"{acc} += {PRIM[e][1]};")

    def emit_size(self, em, s):
        for f in s.fields:
            if f.tagged_in is None:
                continue
            em(f"static int64_t {s.cname}_tag_{f.cname}_size(const struct {s.cname} *m, int16_t version)")
            em("{")
            em("int64_t fs = 0;")
            self.size_value(em, f, f"m->{f.cname}", "1", self.nullable_expr(f), 0, "fs")
            em("return fs;")
            em("}")
            em()
        em(f"static int64_t {s.cname}_size_in(const struct {s.cname} *m, int16_t version)")
        em("{")
        em("int64_t n = 0;")
        em(f"bool flex = {vcond('version', self.flex, self.valid)};")
        em("(void)flex;")
        for f in s.fields:
            c = vcond("version", f.regular, self.valid)
            tc = vcond("version", f.tagged_in, self.valid)
            if c != "0":
                em(f"if ({c}) {{")
                self.size_value(em, f, f"m->{f.cname}", self.flex_expr(f), self.nullable_expr(f), 0, "n")
                if not f.ignorable:
                    em(f"}} else if ({'!(' + tc + ') && ' if tc != '0' else ''}!{self.is_default_expr(f, 'm->' + f.cname)}) {{")
                    em("return -EINVAL;")
                em("}")
            elif not f.ignorable:
                cond = f"!{self.is_default_expr(f, 'm->' + f.cname)}"
                if tc != "0":
                    cond = f"!({tc}) && " + cond
                em(f"if ({cond})")
                em("\treturn -EINVAL;")
        if self.flex is not None:
            tagged = sorted([f for f in s.fields if f.tagged_in is not None], key=lambda f: f.tag)
            em("if (flex) {")
            em("uint32_t ntags = 0;")
            for f in tagged:
                em(f"if (({vcond('version', f.tagged_in, self.valid)}) && !{self.is_default_expr(f, 'm->' + f.cname)}) {{")
                em(f"int64_t fs = {s.cname}_tag_{f.cname}_size(m, version);")
                em("if (fs < 0)")
                em("\treturn fs;")
                em(f"n += (int64_t)kw_uvarint_size({f.tag}) + (int64_t)kw_uvarint_size((uint32_t)fs) + fs;")
                em("ntags++;")
                em("}")
            em("n += (int64_t)kw_uvarint_size(ntags);")
            em("}")
        em("return n;")
        em("}")
        em()

    # -- write
    def write_value(self, em, f, lv, flex, depth, elem_only=False):
        e = f.elem
        if f.is_array and not elem_only:
            i = f"i{depth}"
            em(f"if ({lv}.count < 0) {{")
            em(f"if ({flex})")
            em("\tkw_uvarint(w, 0);")
            em("else")
            em("\tkw_i32(w, -1);")
            em("} else {")
            em(f"if ({flex})")
            em(f"\tkw_uvarint(w, (uint32_t){lv}.count + 1);")
            em("else")
            em(f"\tkw_i32(w, {lv}.count);")
            em(f"for (int32_t {i} = 0; {i} < {lv}.count; {i}++) {{")
            self.write_value(em, f, f"{lv}.items[{i}]", flex, depth + 1, elem_only=True)
            em("}")
            em("}")
            return
        if f.is_struct:
            sc = f.struct.cname
            if not elem_only and f.nullable is not None:
                em(f"if ({lv}_is_null) {{")
                em("kw_i8(w, -1);")
                em("} else {")
                em(f"if ({self.nullable_expr(f)})")
                em("\tkw_i8(w, 1);")
                em(f"{sc}_write(w, &{lv}, version);")
                em("}")
            else:
                em(f"{sc}_write(w, &{lv}, version);")
            return
        if e == "string" or e in ("bytes", "records"):
            lenw = "kw_i16" if e == "string" else "kw_i32"
            em(f"if ({lv}.len < 0) {{")
            em(f"if ({flex})")
            em("\tkw_uvarint(w, 0);")
            em("else")
            em(f"\t{lenw}(w, -1);")
            em("} else {")
            em(f"if ({flex})")
            em(f"\tkw_uvarint(w, (uint32_t){lv}.len + 1);")
            em("else")
            em(f"\t{lenw}(w, ({'int16_t' if e == 'string' else 'int32_t'}){lv}.len);")
            if e == "records":
                em(f"if (!{lv}.ptr && {lv}.len > 0)")
                em(f"\tkw_hole(w, (size_t){lv}.len);      /* sent from a file */")
                em("else")
                em(f"\tkw_raw(w, {lv}.ptr, (size_t){lv}.len);")
            else:
                em(f"kw_raw(w, {lv}.ptr, (size_t){lv}.len);")
            em("}")
            return
        em(f"{PRIM[e][3]}(w, {lv});")

    def emit_write(self, em, s):
        em(f"static void {s.cname}_write(struct kwriter *w, const struct {s.cname} *m, int16_t version)")
        em("{")
        em(f"bool flex = {vcond('version', self.flex, self.valid)};")
        em("(void)flex;")
        for f in s.fields:
            c = vcond("version", f.regular, self.valid)
            if c == "0":
                continue
            em(f"if ({c}) {{")
            self.write_value(em, f, f"m->{f.cname}", self.flex_expr(f), 0)
            em("}")
        if self.flex is not None:
            tagged = sorted([f for f in s.fields if f.tagged_in is not None], key=lambda f: f.tag)
            em("if (flex) {")
            em("uint32_t ntags = 0;")
            for f in tagged:
                em(f"if (({vcond('version', f.tagged_in, self.valid)}) && !{self.is_default_expr(f, 'm->' + f.cname)})")
                em("\tntags++;")
            em("kw_uvarint(w, ntags);")
            for f in tagged:
                em(f"if (({vcond('version', f.tagged_in, self.valid)}) && !{self.is_default_expr(f, 'm->' + f.cname)}) {{")
                em(f"int64_t fs = {s.cname}_tag_{f.cname}_size(m, version);")
                em("assert(fs >= 0);")
                em(f"kw_uvarint(w, {f.tag});")
                em("kw_uvarint(w, (uint32_t)fs);")
                self.write_value(em, f, f"m->{f.cname}", "1", 0)
                em("}")
            em("}")
        em("}")
        em()

    # -- fill (tests)
    def fill_value(self, em, f, lv, nullable, depth, elem_only=False):
        e = f.elem
        if f.is_array and not elem_only:
            i = f"i{depth}"
            em(f"if ({nullable} && fill_rand(g, 4) == 0) {{")
            em(f"{lv}.count = -1;")
            em(f"{lv}.items = NULL;")
            em("} else {")
            em(f"{lv}.count = (int32_t)fill_rand(g, depth < 3 ? 4 : 1);")
            em(f"{lv}.items = arena_calloc(a, (size_t){lv}.count + 1, sizeof(*{lv}.items));")
            em(f"for (int32_t {i} = 0; {i} < {lv}.count; {i}++) {{")
            self.fill_value(em, f, f"{lv}.items[{i}]", "0", depth + 1, elem_only=True)
            em("}")
            em("}")
            return
        if f.is_struct:
            sc = f.struct.cname
            if not elem_only and f.nullable is not None:
                em(f"{lv}_is_null = {nullable} && fill_rand(g, 4) == 0;")
                em(f"if (!{lv}_is_null)")
                em(f"\t{sc}_fill(g, a, version, depth + 1, &{lv});")
            else:
                em(f"{sc}_fill(g, a, version, depth + 1, &{lv});")
            return
        if e == "string":
            em(f"{lv} = ({nullable} && fill_rand(g, 4) == 0) ? KSTR_NULL : fill_str(g, a);")
            return
        if e in ("bytes", "records"):
            em(f"{lv} = ({nullable} && fill_rand(g, 4) == 0) ? KBYTES_NULL : fill_bytes(g, a);")
            return
        if e == "bool":
            em(f"{lv} = fill_rand(g, 2) == 1;")
        elif e == "uuid":
            em(f"{lv} = fill_uuid(g);")
        elif e == "float64":
            em(f"{lv} = (double)fill_rand(g, 1000) / 8.0;")
        else:
            em(f"{lv} = ({PRIM[e][0]})fill_u64(g);")

    def emit_fill(self, em, s):
        em(f"void {s.cname}_fill(struct fill_rng *g, struct arena *a, int16_t version, int depth, struct {s.cname} *m)")
        em("{")
        em(f"{s.cname}_init(m);")
        em("(void)depth; (void)a; (void)g;")
        for f in s.fields:
            rng = f.versions
            c = vcond("version", rng, self.valid)
            if c == "0":
                continue
            if f.tagged is not None:
                c = f"({vcond('version', f.regular, self.valid)}) || ({vcond('version', f.tagged_in, self.valid)})"
            em(f"if ({c}) {{")
            self.fill_value(em, f, f"m->{f.cname}", self.nullable_expr(f), 0)
            em("}")
        em("}")
        em()


def struct_decl(em, s):
    em(f"struct {s.cname} {{")
    if not s.fields:
        em("char unused_;")
    for f in s.fields:
        em(f"{f.ctype()} {f.cname};")
        if f.is_struct and not f.is_array and f.nullable is not None:
            em(f"bool {f.cname}_is_null;")
    em("};")
    em()


HEADER_NOTE = "/* Generated by protocol/gen.py from Kafka's message schemas. Do not edit. */\n"


def api_file_name(msg):
    n = msg.name
    for suffix in ("Request", "Response"):
        if n.endswith(suffix):
            n = n[: -len(suffix)]
    return snake(n)


def write_if_changed(path, text):
    if os.path.exists(path):
        with open(path) as f:
            if f.read() == text:
                return
    with open(path, "w") as f:
        f.write(text)


def generate_group(fname, msgs, out):
    h = Emitter()
    guard = f"RUNNEL_GEN_{fname.upper()}_H"
    h(HEADER_NOTE.rstrip())
    h(f"#ifndef {guard}")
    h(f"#define {guard}")
    h()
    h("#include <stdbool.h>")
    h("#include <stdint.h>")
    h('#include "../arena.h"')
    h('#include "../wire.h"')
    h()
    h("struct fill_rng;")
    h()
    for msg in msgs:
        h(f"/* {msg.name}: versions {msg.valid[0]}-{msg.valid[1]}, flexible "
          + (f"{msg.flexible[0]}+" if msg.flexible else "none") + " */")
        # msg.structs lists children before the structs that contain them
        for s in msg.structs:
            struct_decl(h, s)
        for s in msg.structs:
            h(f"void {s.cname}_init(struct {s.cname} *m);")
            h(f"bool {s.cname}_is_default(const struct {s.cname} *m);")
            h(f"void {s.cname}_fill(struct fill_rng *g, struct arena *a, int16_t version, int depth, struct {s.cname} *m);")
        c = msg.cname
        h(f"#define {c.upper()}_MIN_VERSION {msg.valid[0]}")
        h(f"#define {c.upper()}_MAX_VERSION {msg.valid[1]}")
        h(f"/* Decodes a whole {msg.name}; returns 0, -EBADMSG or -ENOMEM (arena limit). */")
        h(f"int {c}_decode(struct kreader *r, struct arena *a, int16_t version, struct {c} *m);")
        h(f"/* Encoded size, or -EINVAL when a value cannot be carried by this version. */")
        h(f"int64_t {c}_size(const struct {c} *m, int16_t version);")
        h(f"/* Writes exactly {c}_size() bytes; call only after a successful size. */")
        h(f"void {c}_encode(struct kwriter *w, const struct {c} *m, int16_t version);")
        h()
    h(f"#endif")
    write_if_changed(os.path.join(out, fname + ".h"), h.text())

    cc = Emitter()
    cc(HEADER_NOTE.rstrip())
    cc(f'#include "{fname}.h"')
    cc()
    cc("#include <errno.h>")
    cc("#include <string.h>")
    cc()
    fl = Emitter()
    fl(HEADER_NOTE.rstrip())
    fl(f'#include "{fname}.h"')
    fl('#include "fill.h"')
    fl()
    for msg in msgs:
        g = Gen(msg)
        structs = msg.structs
        for s in structs:
            cc(f"static int {s.cname}_read(struct kreader *r, struct arena *a, int16_t version, struct {s.cname} *m);")
            cc(f"static int64_t {s.cname}_size_in(const struct {s.cname} *m, int16_t version);")
            cc(f"static void {s.cname}_write(struct kwriter *w, const struct {s.cname} *m, int16_t version);")
        cc()
        for s in structs:
            g.emit_init(cc, s)
            g.emit_is_default(cc, s)
            g.emit_read(cc, s)
            g.emit_size(cc, s)
            g.emit_write(cc, s)
            g.emit_fill(fl, s)
        c = msg.cname
        cc(f"int {c}_decode(struct kreader *r, struct arena *a, int16_t version, struct {c} *m)")
        cc("{")
        cc(f"if (version < {msg.valid[0]} || version > {msg.valid[1]})")
        cc("\treturn -EBADMSG;")
        cc(f"return {c}_read(r, a, version, m);")
        cc("}")
        cc()
        cc(f"int64_t {c}_size(const struct {c} *m, int16_t version)")
        cc("{")
        cc(f"if (version < {msg.valid[0]} || version > {msg.valid[1]})")
        cc("\treturn -EINVAL;")
        cc(f"return {c}_size_in(m, version);")
        cc("}")
        cc()
        cc(f"void {c}_encode(struct kwriter *w, const struct {c} *m, int16_t version)")
        cc("{")
        cc(f"assert(version >= {msg.valid[0]} && version <= {msg.valid[1]});")
        cc(f"{c}_write(w, m, version);")
        cc("}")
        cc()
    write_if_changed(os.path.join(out, fname + ".c"), cc.text())
    write_if_changed(os.path.join(out, "fill_" + fname + ".c"), fl.text())


FILL_H = HEADER_NOTE + """/* Random values for the codec round-trip tests; not part of the broker. */
#ifndef RUNNEL_GEN_FILL_H
#define RUNNEL_GEN_FILL_H

#include <stdint.h>
#include "../arena.h"
#include "../wire.h"

struct fill_rng {
\tuint64_t state;
};

static inline uint64_t fill_u64(struct fill_rng *g)
{
\t/* xorshift64* */
\tg->state ^= g->state >> 12;
\tg->state ^= g->state << 25;
\tg->state ^= g->state >> 27;
\treturn g->state * 2685821657736338717ULL;
}

static inline uint32_t fill_rand(struct fill_rng *g, uint32_t bound)
{
\treturn (uint32_t)(fill_u64(g) >> 33) % bound;
}

static inline struct kstr fill_str(struct fill_rng *g, struct arena *a)
{
\tint32_t len = (int32_t)fill_rand(g, 9);
\tchar *p = arena_alloc(a, (size_t)len + 1);
\tfor (int32_t i = 0; i < len; i++)
\t\tp[i] = (char)('a' + fill_rand(g, 26));
\treturn (struct kstr){ p, len };
}

static inline struct kbytes fill_bytes(struct fill_rng *g, struct arena *a)
{
\tint32_t len = (int32_t)fill_rand(g, 9);
\tuint8_t *p = arena_alloc(a, (size_t)len + 1);
\tfor (int32_t i = 0; i < len; i++)
\t\tp[i] = (uint8_t)fill_u64(g);
\treturn (struct kbytes){ p, len };
}

static inline struct kuuid fill_uuid(struct fill_rng *g)
{
\tstruct kuuid u;
\tfor (int i = 0; i < 16; i++)
\t\tu.b[i] = (uint8_t)fill_u64(g);
\treturn u;
}

#endif
"""


def load_messages(schema_dir):
    msgs = []
    for path in sorted(glob.glob(os.path.join(schema_dir, "message", "*.json"))):
        with open(path) as f:
            js = json.loads(strip_comments(f.read()))
        kind = js["type"]
        listeners = js.get("listeners", [])
        if kind in ("request", "response"):
            pass
        elif kind in ("header", "data"):
            pass
        else:
            continue
        msgs.append((js, path, False))
    # Internal topic records (records/*.json). They are "data" schemas, or
    # "coordinator-key"/"coordinator-value" in newer Kafka trees; either way
    # one struct per file with versions, coded like any message. The int16
    # version that precedes each key and value in a record is the caller's
    # to write and read (coordinator/offsets.c), as in Kafka's record serde.
    for path in sorted(glob.glob(os.path.join(schema_dir, "records", "*.json"))):
        with open(path) as f:
            js = json.loads(strip_comments(f.read()))
        if js["type"] in ("data", "coordinator-key", "coordinator-value"):
            js["type"] = "data"
            msgs.append((js, path, True))
    # Which API keys a broker serves: decided by the request's listeners.
    served = set()
    for js, _, _ in msgs:
        if js["type"] == "request" and ({"broker", "zkBroker"} & set(js.get("listeners", []))):
            served.add(js["apiKey"])
    out = []
    for js, path, is_record in msgs:
        if js["type"] in ("request", "response") and js["apiKey"] not in served:
            continue
        try:
            out.append(Message(js, path))
        except UnsupportedSchema as e:
            if not is_record:
                raise
            # A record runnel does not read yet (KIP-848 member metadata);
            # leave it out rather than guess its encoding.
            print(f"skipping record schema {js['name']}: {e}", file=sys.stderr)
    return out


def generate_api_table(out, groups):
    apis = {}
    for fname, msgs in groups.items():
        for m in msgs:
            if m.kind in ("request", "response"):
                apis.setdefault(m.api_key, {})[m.kind] = (fname, m)
    h = Emitter()
    h(HEADER_NOTE.rstrip())
    h("#ifndef RUNNEL_GEN_API_TABLE_H")
    h("#define RUNNEL_GEN_API_TABLE_H")
    h()
    h("#include <stddef.h>")
    h("#include <stdint.h>")
    h('#include "../arena.h"')
    h('#include "../wire.h"')
    h()
    h("struct fill_rng;")
    h()
    h("/* One message's codec, reached through void pointers for generic code")
    h(" * (the round-trip tests, the fuzzer, the dump tools). */")
    h("struct msg_codec {")
    h("const char *name;")
    h("size_t struct_bytes;")
    h("void (*init)(void *m);")
    h("int (*decode)(struct kreader *r, struct arena *a, int16_t version, void *m);")
    h("int64_t (*size)(const void *m, int16_t version);")
    h("void (*encode)(struct kwriter *w, const void *m, int16_t version);")
    h("void (*fill)(struct fill_rng *g, struct arena *a, int16_t version, int depth, void *m);")
    h("};")
    h()
    h("struct api_schema {")
    h("int16_t api_key;")
    h("const char *name;")
    h("int16_t min_version;")
    h("int16_t max_version;")
    h("int16_t flexible_min_version;      /* -1: never flexible */")
    h("struct msg_codec request;")
    h("struct msg_codec response;")
    h("};")
    h()
    h(f"#define API_KEY_MAX {max(apis)}")
    h()
    h("/* The schema of an API key a broker can serve, or NULL. */")
    h("const struct api_schema *api_schema_lookup(int16_t api_key);")
    h()
    h("/* Request header version for (key, version): 2 when flexible, else 1. */")
    h("int16_t api_request_header_version(int16_t api_key, int16_t version);")
    h("/* Response header version: 1 when flexible, else 0; ApiVersions always 0. */")
    h("int16_t api_response_header_version(int16_t api_key, int16_t version);")
    h()
    h("enum api_key {")
    for k in sorted(apis):
        name = apis[k]["request"][1].name[: -len("Request")]
        h(f"API_{snake(name).upper()} = {k},")
    h("};")
    h()
    h("#endif")
    write_if_changed(os.path.join(out, "api_table.h"), h.text())

    for variant in ("api_table", "fill_api_table"):
        c = Emitter()
        c(HEADER_NOTE.rstrip())
        c('#include "api_table.h"')
        for fname in sorted({v["request"][0] for v in apis.values()}):
            c(f'#include "{fname}.h"')
        c()
        is_fill = variant == "fill_api_table"
        if is_fill:
            c("/* Binds the random fillers into the table for the tests. */")
            c("void api_table_bind_fill(void);")
            c()
        for k in sorted(apis):
            for kind in ("request", "response"):
                m = apis[k][kind][1]
                n = m.cname
                if is_fill:
                    c(f"static void w_{n}_fill(struct fill_rng *g, struct arena *a, int16_t v, int depth, void *m) {{ {n}_fill(g, a, v, depth, m); }}")
                else:
                    c(f"static void w_{n}_init(void *m) {{ {n}_init(m); }}")
                    c(f"static int w_{n}_decode(struct kreader *r, struct arena *a, int16_t v, void *m) {{ return {n}_decode(r, a, v, m); }}")
                    c(f"static int64_t w_{n}_size(const void *m, int16_t v) {{ return {n}_size(m, v); }}")
                    c(f"static void w_{n}_encode(struct kwriter *w, const void *m, int16_t v) {{ {n}_encode(w, m, v); }}")
        c()
        if is_fill:
            c("extern struct api_schema api_schemas_mut[];")
            c("void api_table_bind_fill(void)")
            c("{")
            for idx, k in enumerate(sorted(apis)):
                for kind in ("request", "response"):
                    c(f"api_schemas_mut[{idx}].{kind}.fill = w_{apis[k][kind][1].cname}_fill;")
            c("}")
        else:
            c("/* Mutable only so that the tests can bind the fillers (fill_api_table.c). */")
            c("extern struct api_schema api_schemas_mut[];")
            c("struct api_schema api_schemas_mut[] = {")
            for k in sorted(apis):
                rq = apis[k]["request"][1]
                rs = apis[k]["response"][1]
                flex = rq.flexible[0] if rq.flexible else -1
                name = rq.name[: -len("Request")]
                c(f'{{ {k}, "{name}", {rq.valid[0]}, {rq.valid[1]}, {flex},')
                for m in (rq, rs):
                    n = m.cname
                    c(f'  {{ "{m.name}", sizeof(struct {n}), w_{n}_init, w_{n}_decode, w_{n}_size, w_{n}_encode, NULL }},')
                c("},")
            c("};")
            c()
            c(f"static const int16_t api_index[{max(apis) + 1}] = {{")
            line = []
            idx_of = {k: i for i, k in enumerate(sorted(apis))}
            for k in range(max(apis) + 1):
                line.append(str(idx_of.get(k, -1)))
            for i in range(0, len(line), 16):
                c(", ".join(line[i:i + 16]) + ",")
            c("};")
            c()
            c("const struct api_schema *api_schema_lookup(int16_t api_key)")
            c("{")
            c(f"if (api_key < 0 || api_key > {max(apis)} || api_index[api_key] < 0)")
            c("\treturn NULL;")
            c("return &api_schemas_mut[api_index[api_key]];")
            c("}")
            c()
            c("int16_t api_request_header_version(int16_t api_key, int16_t version)")
            c("{")
            c("const struct api_schema *s = api_schema_lookup(api_key);")
            c("if (api_key == 7 && version == 0)")
            c("\treturn 0;      /* ControlledShutdown v0 predates client ids */")
            c("if (s && s->flexible_min_version >= 0 && version >= s->flexible_min_version)")
            c("\treturn 2;")
            c("return 1;")
            c("}")
            c()
            c("int16_t api_response_header_version(int16_t api_key, int16_t version)")
            c("{")
            c("const struct api_schema *s = api_schema_lookup(api_key);")
            c("if (api_key == 18)")
            c("\treturn 0;      /* ApiVersions: tagged fields only in the body (KIP-511) */")
            c("if (s && s->flexible_min_version >= 0 && version >= s->flexible_min_version)")
            c("\treturn 1;")
            c("return 0;")
            c("}")
        write_if_changed(os.path.join(out, variant + ".c"), c.text())


def generate_errors(schema_dir, out):
    rows = []
    with open(os.path.join(schema_dir, "error-codes.tsv")) as f:
        for i, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if i == 0 or len(parts) < 3:
                continue
            rows.append((int(parts[0]), parts[1], parts[2] == "yes"))
    h = Emitter()
    h(HEADER_NOTE.rstrip())
    h("#ifndef RUNNEL_GEN_ERRORS_H")
    h("#define RUNNEL_GEN_ERRORS_H")
    h()
    h("#include <stdbool.h>")
    h()
    h("/* Kafka's error codes, as sent to clients. */")
    h("enum kafka_error {")
    for code, name, _ in rows:
        h(f"KAFKA_{name} = {code},")
    h("};")
    h()
    h("/* Kafka's name for a code (\"UNKNOWN_TOPIC_OR_PARTITION\"), or \"UNKNOWN\". */")
    h("const char *kafka_error_name(int code);")
    h("/* Whether Kafka marks the error retriable. */")
    h("bool kafka_error_is_retriable(int code);")
    h()
    h("#endif")
    write_if_changed(os.path.join(out, "errors.h"), h.text())
    c = Emitter()
    c(HEADER_NOTE.rstrip())
    c('#include "errors.h"')
    c()
    c("const char *kafka_error_name(int code)")
    c("{")
    c("switch (code) {")
    for code, name, _ in rows:
        c(f'case {code}: return "{name}";')
    c("default: return \"UNKNOWN\";")
    c("}")
    c("}")
    c()
    c("bool kafka_error_is_retriable(int code)")
    c("{")
    c("switch (code) {")
    for code, name, retriable in rows:
        if retriable:
            c(f"case {code}:")
    c("\treturn true;")
    c("default:")
    c("\treturn false;")
    c("}")
    c("}")
    write_if_changed(os.path.join(out, "errors.c"), c.text())


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen.py SCHEMA_DIR OUT_DIR")
    schema_dir, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    msgs = load_messages(schema_dir)
    groups = {}
    for m in msgs:
        groups.setdefault(api_file_name(m) if m.kind in ("request", "response") else snake(m.name), []).append(m)
    for fname, ms in groups.items():
        ms.sort(key=lambda m: m.kind)   # request before response
        generate_group(fname, ms, out)
    generate_api_table(out, groups)
    generate_errors(schema_dir, out)
    with open(os.path.join(out, "fill.h"), "w") as f:
        f.write(FILL_H)
    print(f"generated {len(msgs)} schemas into {len(groups)} files in {out}")


if __name__ == "__main__":
    main()

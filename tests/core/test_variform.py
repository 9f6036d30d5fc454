# gatemq.variform against the examples of EMQX's documentation and emqx_variform_bif's comments.
from _check import raises
from gatemq import variform as V

B = {"clientid": "dev-42.abc", "username": "alice", "cn": "sensor1.site7.acme",
     "dn": "CN=sensor1,OU=site7,O=acme", "user_property": {"group": "g1"}}


def r(expr, b=B):
    return V.render(V.compile(expr), b)


def test_emqx_documented_examples():
    assert r("nth(1,tokens(clientid, '-'))") == "dev"              # client-attributes.md
    assert r("nth(1, tokens(clientid, '.'))") == "dev-42"
    assert r("nth(1, regex_extract('Number: 12345', '([0-9]+)'))") == "12345"
    assert r("coalesce(nope, username)") == "alice"
    assert r("iif(str_eq(user_property.group, 'g1'), 'yes', 'no')") == "yes"
    assert r("substr(clientid, 0, 3)") == "dev"                      # string:slice counts from 0
    assert r("nth(5, tokens(clientid, '-'))") == ""                  # past the end: empty
    assert r("concat([upper(username), '-', 1])") == "ALICE-1"
    assert r("hash('sha1', username)") == "522b276a356bdf39013dfabea2cd43e141ecc9e8"


def test_errors_at_compile_with_columns():
    for text, col in (("'x'", 1), ("nth(1", 6), ("lower()", 7), ("lower(a) b", 10), ("f(x)", 1)):
        e = raises(V.VariformError, V.compile, text)
        assert e.col == col, (text, e.col)
    raises(V.VariformError, V.compile, "nth(1)")                    # arity


def test_unbound_and_arrays_are_errors_at_render():
    raises(V.VariformError, r, "lower(nope)")
    raises(V.VariformError, r, "tokens(clientid, '-')")               # an array is no attribute


def test_variables_a_form_reads():
    f = V.compile("concat([upper(client_attrs.site), '-', iif(peersni, peersni, 'none'), nth(1, [cn])])")
    assert V.variables(f) == ["client_attrs.site", "peersni", "peersni", "cn"]
    assert V.variables(V.compile("clientid")) == ["clientid"]


def test_a_port_finds_the_key_whose_expression_reads_a_variable():
    from gatemq import clientattrs
    m = {"clientid_override": None,
         "client_attrs_init": [{"expression": "cn", "set_as_attr": "a"},
                               {"expression": "lower(peersni)", "set_as_attr": "b"}]}
    assert clientattrs.reading(m, ("peersni",)) == ("mqtt.client_attrs_init.2.expression", "peersni")
    m["clientid_override"] = "concat([peersni, cn])"
    assert clientattrs.reading(m, ("peersni",)) == ("mqtt.clientid_override", "peersni")
    assert clientattrs.reading(m, ("listener",)) is None

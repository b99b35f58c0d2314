import pytest

from coa.tools.calculator import Calculator


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2*(3+4)", "14"),  # 2 * 7
        ("1 + 2 * 3", "7"),  # precedence: 1 + 6
        ("7/2", "3.5"),
        ("6/3", "2"),  # an integral float prints as an integer
        ("7//2", "3"),
        ("-7//2", "-4"),  # floor, as Python: -3.5 -> -4
        ("7 % 3", "1"),
        ("-7 % 3", "2"),  # the sign of the divisor, as Python: -7 = -3*3 + 2
        ("2**10", "1024"),
        ("2**3**2", "512"),  # right-associative: 2**9
        ("-2**2", "-4"),  # unary minus binds looser than **
        ("(-2)**2", "4"),
        ("2**-1", "0.5"),
        ("--3", "3"),
        ("+3", "3"),
        ("0.1 + 0.2", "0.3"),  # 12 significant digits hide the float error
        ("1/3", "0.333333333333"),
        ("2**0.5", "1.41421356237"),
        ("1_000 * 3", "3000"),
        ("  ((1 + 1)) ", "2"),
        ("10**20", "100000000000000000000"),  # integers stay exact
        ("1e16", "1e+16"),
    ],
)
def test_values(expression, value):
    assert Calculator().call([expression]) == [value]


@pytest.mark.parametrize(
    ("expression", "observation"),
    [
        ("1/0", "Calculator error: division by zero"),
        ("5 // 0", "Calculator error: division by zero"),
        ("5 % 0.0", "Calculator error: division by zero"),
        ("0**-1", "Calculator error: division by zero"),
        ("", "Calculator error: empty expression"),
        ("2 +", "Calculator error: invalid syntax; use numbers, + - * / // % **, unary minus and parentheses"),
        ("2^3", "Calculator error: '^' is not a power here; write ** (2**10)"),
        ("(-8)**(1/3)", "Calculator error: result is not a real number"),
        ("1e308 * 10", "Calculator error: result too large"),
        ("2.0**5000", "Calculator error: exponent 5000 is beyond the limit of 1000"),
    ],
)
def test_failures_are_observations(expression, observation):
    assert Calculator().call([expression]) == [observation]


@pytest.mark.parametrize(
    ("expression", "refusal"),
    [
        ("__import__('os')", "unsupported function call"),
        ("__import__('os').system('echo pwned')", "unsupported function call"),
        ("().__class__.__bases__[0].__subclasses__()", "unsupported function call"),
        ("os", "unsupported name 'os'"),
        ("(1).real", "unsupported syntax (Attribute)"),
        ("'a' * 3", "unsupported constant 'a'"),
        ("True + 1", "unsupported constant True"),
        ("[1] * 3", "unsupported syntax (List)"),
        ("lambda: 1", "unsupported syntax (Lambda)"),
        ("1 if 1 else 2", "unsupported syntax (IfExp)"),
        ("1 << 100000", "unsupported operator LShift"),
        ("1 == 1", "unsupported syntax (Compare)"),
        ("9**9**9**9", "exponent 387420489 is beyond the limit of 1000"),  # right-assoc: 9**9 first
        ("10**1001", "exponent 1001 is beyond the limit of 1000"),
        ("(9**999)**999", "result too large (more than 1000 digits)"),  # checked before computing
        ("10**999 * 10**999", "result too large (more than 1000 digits)"),
        ("1" * 201, "expression longer than 200 characters"),
    ],
)
def test_malicious_or_huge_inputs_are_refused_as_observations(expression, refusal):
    (observation,) = Calculator().call([expression])
    assert observation.startswith("Calculator error: ") and refusal in observation


def test_batch_keeps_order_and_one_failure_spoils_nothing():
    assert Calculator().call(["1+1", "1/0", "3*3"]) == ["2", "Calculator error: division by zero", "9"]
    assert Calculator().call([]) == []


def test_limits_are_settings():
    calc = Calculator(max_length=6, max_exponent=3, max_digits=4)
    assert calc.call(["1234567", "2**4", "99*999", "9999", "9*99"]) == [
        "Calculator error: expression longer than 6 characters",
        "Calculator error: exponent 4 is beyond the limit of 3",
        "Calculator error: result too large (more than 4 digits)",  # 98901
        "9999",
        "891",
    ]
    with pytest.raises(ValueError, match="Calculator: max_length=0 must be >= 1"):
        Calculator(max_length=0)


def test_non_text_and_deep_nesting_never_raise():
    calc = Calculator(max_length=10_000)
    assert calc.call([None]) == ["Calculator error: expected an expression text, got NoneType"]
    (deep,) = calc.call(["-" * 5000 + "1"])  # deeper than the walk's recursion allows
    assert deep.startswith("Calculator error: ")
    (parens,) = calc.call(["(" * 300 + "1" + ")" * 300])  # beyond Python's parser nesting limit
    assert parens.startswith("Calculator error: ")

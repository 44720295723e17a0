"""Password policy: length, a short list of common passwords, and the obvious patterns.

`password_problem(password, username)` returns why a password is refused (None = accepted); the
user schemas (`UserIn`, API and CLI) and the password change (`PATCH /users/{id}`) call it.

Rules (no network, no large dictionary): at least 8 characters; not on the list below, also
after stripping leading/trailing digits and punctuation (`Password1!` is `password`); no run
of the alphabet, the digits or a keyboard row (`12345678`, `qwertyui`, `1qaz2wsx`), forwards or
backwards; not one short unit repeated (`abcabcabc`) and at least 4 different characters; not
the user name or part of it; digits only need 12 or more (dates and phone numbers are guessed
first). The list is written for SiteGuard (the top of every published leak list, the product's and
the trade's own words); it is a floor, not zxcvbn.
"""

from __future__ import annotations

import string

MIN_LENGTH = 8
DIGITS_ONLY_MIN = 12

# Base words: compared after lower-casing and stripping leading/trailing digits and punctuation.
_WORDS = """
    password passw0rd p@ssword p@ssw0rd pass passwd pwd secret secret1 letmein welcome
    welcome1 admin administrator admin123 root toor login master changeme change-me default
    guest user test tester testing demo qwerty qwertz azerty qwertyuiop asdf asdfgh asdfghjkl
    zxcvbn zxcvbnm abc abcd abcdef abcdefg iloveyou loveyou love lovely monkey dragon
    football baseball basketball soccer hockey superman batman spiderman starwars pokemon
    sunshine princess princesse shadow master michael jennifer jordan hunter hunter2 ranger
    buster thomas robert daniel andrew joshua charlie freedom whatever trustno1 trustnoone
    access killer hello hello123 hellohello flower flowers cookie cheese summer winter autumn
    spring computer internet server network system service office company business money
    mustang harley ferrari corvette mercedes porsche yankees dallas chelsea liverpool arsenal
    barcelona madrid maggie ginger pepper tigger blink182 matrix q1w2e3r4 zaq12wsx zaq1zaq1
    1q2w3e4r 1qaz2wsx qazwsx qazwsxedc 123qwe qwe123 qwerty123 qweasd qweasdzxc asd123
    aa123456 a123456 a1b2c3 a1b2c3d4 abc123 abc12345 abcd1234 pass123 pass1234 password123
    football1 iloveyou1 princess1 monkey123 dragon123 lovely123 sunshine1 charlie1 shadow1
    linkedin facebook google yahoo hotmail gmail twitter instagram youtube microsoft apple
    samsung huawei xiaomi oracle cisco linux ubuntu debian windows android iphone
    woaini woaini1314 wo123456 aini1314 5201314 1314520 iloveu nihao zhongguo china beijing
    shanghai shenzhen guangzhou tiananmen baidu taobao qq123456 dearbook
    siteguard site-guard sg siteguard1 helmet hardhat hard-hat safety safetyfirst safety1st
    construction builder building worker workers site sites jobsite manager viewer trainer
    operator camera cameras detector monitor security secure protect protection
    ppe harness vest crane scaffold concrete power powerline electric
    letmein1 welcome123 admin1234 administrator1 root123 toor123 changeme1 temp temp123
    temporary newpass newpassword mypassword mypass yourpassword nopassword nothing none
    unknown qwerty1 qwerty12 qwertyui asdfasdf asdfqwer zxcvzxcv 1q2w3e 1q2w3e4r5t
    starwars1 pokemon1 naruto sasuke goku dragonball onepiece anime otaku
    jesus christ god angel angels heaven blessed faith
    michelle jessica ashley amanda melissa nicole stephanie elizabeth sarah hannah
    matthew anthony william david richard joseph james john chris christopher
    family friends friend forever soccer1 baseball1 loveme lover
    """
COMMON = frozenset(_WORDS.split())

_SEQUENCES = (
    "0123456789",
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiop",
    "qwertzuiop",
    "azertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "qazwsxedcrfvtgbyhnujmikolp",
    "1q2w3e4r5t6y7u8i9o0p",
    "q1w2e3r4t5y6u7i8o9p0",
    "!@#$%^&*()",
    "1234567890-=",
)
_STRIP = string.digits + string.punctuation + " "


def _is_sequence(text: str) -> bool:
    return any(text in seq or text in seq[::-1] for seq in _SEQUENCES)


def _is_repeated(text: str) -> bool:
    n = len(text)
    return any(n % size == 0 and text[:size] * (n // size) == text for size in range(1, n // 2 + 1))


def password_problem(password: str, username: str = "") -> str | None:
    """Why `password` is refused for `username`, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"too short: at least {MIN_LENGTH} characters"
    low = password.lower()
    core = low.strip(_STRIP)
    if low in COMMON or core in COMMON:
        return "too common: it is on the list of passwords tried first"
    if len(set(low)) < 4 or _is_repeated(low):
        return "too simple: a few characters repeated"
    if _is_sequence(low) or (len(core) >= 4 and _is_sequence(core) and len(core) * 2 >= len(low)):
        return "too simple: a run of the alphabet, the digits or a keyboard row"
    name = username.lower()
    if len(name) >= 3 and (name in low or (len(core) >= 3 and core in name)):
        return "too close to the user name"
    if password.isdigit() and len(password) < DIGITS_ONLY_MIN:
        return f"digits only: use at least {DIGITS_ONLY_MIN}, or add letters"
    return None

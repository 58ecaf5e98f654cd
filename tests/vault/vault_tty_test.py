#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
# The vault example at a real terminal (a pseudo-terminal): `init` asks for the passphrase
# twice and refuses two that differ; Ctrl-C at the passphrase prompt ends the vault with the
# terminal's echo back on (before: it died with echo off, and the shell stayed blind).
# Usage: vault_tty_test.py PATH-TO-VAULT-BINARY
import os
import pty
import select
import sys
import tempfile
import time

vault = sys.argv[1]
passed = failed = 0


def check(condition, what):
    global passed, failed
    if condition:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + what)


def run_at_terminal(command, answer):
    """Runs `sh -c command` on a new pseudo-terminal; answer(prompt_text) gives what to type
    after each prompt, or None to stop typing. Returns (everything the terminal showed, status)."""
    pid, master = pty.fork()
    if pid == 0:
        os.execvp("sh", ["sh", "-c", command])
    shown = b""
    typed_after = 0
    deadline = time.time() + 60
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal's last process is gone
                break
            if not chunk:
                break
            shown += chunk
        # Type only once the program waits at a prompt that has not been answered.
        prompts = shown.count(b": ")
        if prompts > typed_after:
            reply = answer(shown.decode(errors="replace"))
            typed_after = prompts
            if reply is not None:
                time.sleep(0.1)  # let it switch echo off first
                os.write(master, reply)
    _, status = os.waitpid(pid, 0)
    os.close(master)
    return shown.decode(errors="replace"), status


with tempfile.TemporaryDirectory() as work:
    path = os.path.join(work, "tty.vault")

    answers = iter([b"one passphrase\r", b"another one\r"])
    shown, status = run_at_terminal(f"'{vault}' '{path}' init", lambda _: next(answers, None))
    check("repeat it: " in shown, "init did not ask for the passphrase twice: " + repr(shown))
    check("the two passphrases differ" in shown and os.WEXITSTATUS(status) == 1,
          "differing passphrases were not refused: " + repr(shown))
    check(not os.path.exists(path), "a vault was created from differing passphrases")
    check("one passphrase" not in shown, "the passphrase was echoed: " + repr(shown))

    answers = iter([b"same passphrase\r", b"same passphrase\r"])
    shown, status = run_at_terminal(f"'{vault}' '{path}' init", lambda _: next(answers, None))
    check(os.WEXITSTATUS(status) == 0 and os.path.exists(path),
          "init with the same passphrase twice failed: " + repr(shown))

    # Ctrl-C at the prompt: the shell reports the terminal's settings after the vault is gone.
    answers = iter([b"\x03"])
    shown, status = run_at_terminal(
        f"trap 'stty -a; exit 130' INT; '{vault}' '{path}' list; stty -a",
        lambda _: next(answers, None))
    settings = shown.split("master passphrase: ", 1)[-1]
    check(" -echo " not in settings and " echo " in settings,
          "the terminal's echo stayed off after Ctrl-C: " + repr(settings[:300]))

print(f"{passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)

"""The test and benchmark harness: helpers that ``tests/`` and ``bench/`` both import.

Held and stubbed stacks, a stand-in task instance, the native Compose topology and its
REST client, the emulator's state, small models. Not shipped in the wheel; imports the
package under test, never ``tests``.
"""

"""Airflow 3.3's React UI, driven as a person drives it (Selenium, :mod:`testkit.browser`).

What the pages look like, read from the UI's source (``airflow/ui``): the simple auth
manager's login form (``username``, ``password``); the DAG page's pause switch and
``trigger-dag-button``; the trigger form, one ``.chakra-field__root`` row per Param with
its name as label and its description under the field, the field's id
``element_<name>``; Params of type ``object`` and arrays whose items are not strings
are Monaco JSON editors (what is pasted there is parsed as JSON, and the form keeps
the last text that parsed); a refused trigger shows the API's answer in an alert; the
task instance's ``Details`` tab holds its extra links (``<a target="_blank">``), its
``Logs`` tab the log lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from testkit.browser import Browser

#: Seconds a page element may take to appear.
WAIT = 30.0


def _by() -> Any:
    from selenium.webdriver.common.by import By

    return By


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``check`` until it returns something truthy (its exceptions count as not yet).

    :param check: the probe.
    :param what: names the awaited thing in the error.
    :param timeout: seconds.
    :raises AssertionError: after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            found = check()
        except Exception as exc:  # noqa: BLE001 - not there yet
            last, found = exc, None
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{what}: not seen after {timeout:.0f} s ({last!r})")


class AirflowUi:
    """One logged-in browser on an api-server.

    :param browser: the browser.
    :param base_url: the api-server's URL.
    """

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.browser = browser
        self.driver = browser.driver
        self.base_url = base_url.rstrip("/")

    # ----- pages

    def login(self, username: str, password: str) -> None:
        """Open the UI, get sent to the login page, sign in, land on the home page."""
        by = _by()
        self.driver.get(f"{self.base_url}/")
        wait_for(lambda: self.driver.find_element(by.NAME, "username"), "the login form")
        self.browser.shot("login-page")
        self.driver.find_element(by.NAME, "username").send_keys(username)
        self.driver.find_element(by.NAME, "password").send_keys(password)
        self.driver.find_element(by.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(lambda: "/auth/login" not in self.driver.current_url
                 and self.driver.find_elements(by.XPATH, "//button[normalize-space()='Admin']"),
                 "the home page after login")
        self.browser.shot("logged-in")

    def open_dag(self, dag_id: str) -> None:
        """The DAG's page."""
        self.driver.get(f"{self.base_url}/dags/{dag_id}")
        wait_for(lambda: self._find("[data-testid=trigger-dag-button]"), f"the page of {dag_id}")

    def pause_switch(self) -> Any:
        """The DAG page's pause switch (its checkbox is checked when the DAG runs)."""
        return wait_for(lambda: self._find("input[type=checkbox][id^='switch']"), "pause switch")

    def unpause(self) -> None:
        """Flip the pause switch on, as a person clicks it."""
        box = self.pause_switch()
        if not box.is_selected():
            box.find_element(_by().XPATH, "./..").click()
        wait_for(lambda: self.pause_switch().is_selected(), "the switch turned on")

    def open_trigger_form(self) -> None:
        """Click ``Trigger`` and wait for the form's Params."""
        self._find("[data-testid=trigger-dag-button]").click()
        wait_for(lambda: self.param_rows(), "the trigger form's Params")

    def param_rows(self) -> dict[str, str]:
        """The form's rows: Param name -> the row's whole text (label, value, description)."""
        rows = {}
        for row in self.driver.find_elements(_by().CSS_SELECTOR,
                                             "[role=dialog] .chakra-field__root"):
            labels = row.find_elements(_by().CSS_SELECTOR, "label.chakra-field__label")
            if labels:
                name = labels[0].text.replace("*", "").strip()
                rows[name] = row.text
        return rows

    def field(self, name: str) -> Any:
        """The field of Param ``name``, scrolled into view."""
        element = wait_for(lambda: self.driver.find_element(_by().ID, f"element_{name}"),
                           f"the field of {name}")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        return element

    def type_text(self, name: str, text: str) -> None:
        """Replace a text field's value: select all, type."""
        from selenium.webdriver.common.keys import Keys

        element = self.field(name)
        element.click()
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.DELETE)
        element.send_keys(text)

    def paste_json(self, name: str, text: str) -> str:
        """Replace a JSON editor's text by pasting ``text`` (select all, paste).

        :returns: the editor's text afterwards (the form reformats what parsed).
        """
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        editor = self.field(name)
        editor.find_element(_by().CSS_SELECTOR, ".view-lines").click()
        ActionChains(self.driver).key_down(Keys.CONTROL).send_keys("a").key_up(
            Keys.CONTROL).perform()
        self.driver.execute_script(
            "const data = new DataTransfer(); data.setData('text/plain', arguments[0]);"
            "document.activeElement.dispatchEvent(new ClipboardEvent('paste',"
            " {clipboardData: data, bubbles: true, cancelable: true}));", text)
        time.sleep(0.5)
        return self.editor_text(name)

    def editor_text(self, name: str) -> str:
        """The text a JSON editor shows."""
        lines = self.field(name).find_element(_by().CSS_SELECTOR, ".view-lines")
        return str(lines.get_attribute("innerText")).replace("\xa0", " ")

    def submit_trigger(self) -> None:
        """Click the form's ``Trigger`` button (once the last refusal's toast is gone)."""
        button = self._find("[role=dialog] [data-testid=trigger-dag-submit]")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)

        def click() -> bool:
            button.click()  # raises while a toast covers the button
            return True
        wait_for(click, "a click on Trigger")

    def alert_text(self, containing: str) -> str:
        """The text of the form's alert that holds ``containing``."""
        def alert() -> str:
            for element in self.driver.find_elements(_by().CSS_SELECTOR,
                                                     "[role=alert], .chakra-alert__root"):
                if containing in element.text:
                    self.driver.execute_script("arguments[0].scrollIntoView()", element)
                    return str(element.text)
            return ""
        return str(wait_for(alert, f"an alert saying {containing!r}"))

    def form_open(self) -> bool:
        """Whether the trigger form is still shown."""
        return bool(self.param_rows())

    def open_task_instance(self, dag_id: str, run_id: str, task_id: str, tab: str) -> None:
        """A task instance's page, on ``tab`` (``Logs`` or ``Details``)."""
        path = f"/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}"
        self.driver.get(self.base_url + path)
        tab_xpath = f"//button[normalize-space()='{tab}'] | //a[normalize-space()='{tab}']"
        wait_for(lambda: self.driver.find_element(_by().XPATH, tab_xpath), f"the {tab} tab")
        self.driver.find_element(_by().XPATH, tab_xpath).click()

    def extra_links(self) -> dict[str, str]:
        """The task instance's extra links shown on its Details tab: name -> href."""
        def links() -> dict[str, str]:
            return {a.text: a.get_attribute("href")
                    for a in self.driver.find_elements(_by().CSS_SELECTOR, "a[target=_blank]")
                    if a.text}
        return dict(wait_for(links, "the extra links"))

    def follow(self, link_text: str) -> str:
        """Click an extra link, read the URL of the tab it opens, close that tab.

        :returns: the opened tab's URL.
        """
        main = self.driver.current_window_handle
        before = set(self.driver.window_handles)
        self.driver.find_element(
            _by().XPATH, f"//a[@target='_blank'][normalize-space()='{link_text}']").click()
        handle = wait_for(lambda: (set(self.driver.window_handles) - before or {None}).pop(),
                          f"the tab of {link_text!r}")
        self.driver.switch_to.window(handle)
        url = str(wait_for(lambda: self.driver.current_url not in ("", "about:blank")
                           and self.driver.current_url, f"the URL of {link_text!r}"))
        self.browser.shot(f"link-{link_text.lower().replace(' ', '-')}")
        self.driver.close()
        self.driver.switch_to.window(main)
        return url

    def log_text(self, containing: str) -> str:
        """The Logs tab's text once it holds ``containing``."""
        body = self.driver.find_element(_by().TAG_NAME, "body")
        return str(wait_for(lambda: containing in body.text and body.text,
                            f"log lines with {containing!r}"))

    def _find(self, css: str) -> Any:
        return self.driver.find_element(_by().CSS_SELECTOR, css)

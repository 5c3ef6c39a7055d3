"""The account steps the browser tests share: the sidebar's account button and the dialog's
forms, as a user reaches them."""

from __future__ import annotations

from playwright.async_api import Locator, Page, expect

PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple battery horse correct"


def account_dialog(page: Page) -> Locator:
    return page.locator("#account-dialog")


async def open_account(page: Page) -> Locator:
    await page.locator("#open-account").click()
    dialog = account_dialog(page)
    await expect(dialog).to_be_visible()
    return dialog


async def sign_up(page: Page, email: str, password: str = PASSWORD, name: str = "") -> None:
    dialog = await open_account(page)
    await dialog.get_by_role("button", name="Create an account").click()
    await fill_sign_up(page, email, password, name)


async def fill_sign_up(page: Page, email: str, password: str = PASSWORD, name: str = "") -> None:
    dialog = account_dialog(page)
    await expect(dialog.get_by_role("heading", name="Create an account")).to_be_visible()
    if name:
        await dialog.get_by_label("Name (optional)").filter(visible=True).fill(name)
    await dialog.get_by_label("Email").filter(visible=True).fill(email)
    await (
        dialog.get_by_label("Password (at least 10 characters)").filter(visible=True).fill(password)
    )
    await dialog.get_by_role("button", name="Create account").click()
    await expect(dialog.get_by_text(f"Signed in as {name or email}")).to_be_visible()


async def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    dialog = await open_account(page)
    await dialog.get_by_label("Email").filter(visible=True).fill(email)
    await dialog.get_by_label("Password", exact=True).filter(visible=True).fill(password)
    await dialog.get_by_role("button", name="Sign in", exact=True).click()


async def sign_out(page: Page) -> None:
    dialog = await open_account(page)
    await dialog.get_by_role("button", name="Sign out").click()
    await expect(page.locator("#open-account")).to_have_text("Sign in")


async def close(dialog: Locator) -> None:
    await dialog.get_by_role("button", name="Close").click()
    await expect(dialog).to_be_hidden()

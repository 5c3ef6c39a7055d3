// The phone layout's conversation list, which slides over the chat: while it is open the chat
// behind is inert and the focus is in the list; closing it gives the focus back.

import { ui } from "./ui.js";

export const isSidebarOpen = () => document.body.classList.contains("sidebar-open");

export function toggleSidebar(open) {
  if (open === isSidebarOpen()) return;
  document.body.classList.toggle("sidebar-open", open);
  ui.scrim.hidden = !open;
  ui.toggleSidebar.setAttribute("aria-expanded", String(open));
  // Only an overlay (the phone layout) takes the chat's place; on a desktop both stay usable.
  const overlay = getComputedStyle(ui.toggleSidebar).display !== "none";
  ui.main.inert = open && overlay;
  if (open && overlay) ui.newChat.focus();
  else if (!open && ui.sidebar.contains(document.activeElement)) ui.toggleSidebar.focus();
}

export function setupLayout() {
  ui.toggleSidebar.addEventListener("click", () => toggleSidebar(!isSidebarOpen()));
  ui.scrim.addEventListener("click", () => toggleSidebar(false));
}

import '@mantine/core/styles.css';
import '@mantine/charts/styles.css';
import '@mantine/notifications/styles.css';
import './app.css';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import {
  MantineProvider,
  Modal,
  MultiSelect,
  NativeSelect,
  Notification,
  NumberInput,
  PasswordInput,
  TextInput,
  Textarea,
  createTheme,
  darken,
  type CSSVariablesResolver,
} from '@mantine/core';
import { BarChart, DonutChart } from '@mantine/charts';
import { Notifications } from '@mantine/notifications';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { App } from './App';
import { ApiError, adoptSsoCsrf, recoverCsrf } from './api';
import { RecoverPage } from './pages/Recover';

// Back from a sign-in provider: take over the session's CSRF token before anything calls the API.
adoptSsoCsrf();
// The end users' self-service page (/recover) is a page of its own, not the console.
const selfService = window.location.pathname === '/recover' || window.location.pathname.startsWith('/recover/');
if (selfService) recoverCsrf.adopt();

/**
 * The server writes a fresh nonce into this meta tag for every page it sends, and allows
 * `<style nonce=…>` with it in the page's Content-Security-Policy: Mantine's CSS variables go in
 * such an element. Under `vite` (development) the placeholder stays and no CSP applies.
 */
const nonce = document.querySelector<HTMLMetaElement>('meta[name="kw-style-nonce"]')?.content ?? '';
// Modals lock page scrolling with react-remove-scroll, which adds its own <style> element and
// takes its nonce from this well-known global (the get-nonce convention).
(globalThis as { __webpack_nonce__?: string }).__webpack_nonce__ = nonce;

const theme = createTheme({
  primaryColor: 'blue',
  // Shade 8: white on the primary color (buttons) and primary links on white pass WCAG AA.
  primaryShade: 8,
  defaultRadius: 'md',
  fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
  fontFamilyMonospace: 'ui-monospace, "Cascadia Mono", "Segoe UI Mono", Menlo, Consolas, monospace',
  headings: { fontWeight: '650' },
  // Labels stay exactly their words ("Password", not "Password *"): required fields are still
  // marked required for assistive technology by the input itself.
  components: {
    TextInput: TextInput.extend({ defaultProps: { withAsterisk: false } }),
    PasswordInput: PasswordInput.extend({ defaultProps: { withAsterisk: false } }),
    NativeSelect: NativeSelect.extend({ defaultProps: { withAsterisk: false } }),
    NumberInput: NumberInput.extend({ defaultProps: { withAsterisk: false } }),
    MultiSelect: MultiSelect.extend({ defaultProps: { withAsterisk: false } }),
    Textarea: Textarea.extend({ defaultProps: { withAsterisk: false } }),
    // The console's charts are pictures of numbers their legends state (aria-hidden): no keyboard
    // stop may sit inside them (axe: aria-hidden-focus), so recharts' keyboard layer is off.
    DonutChart: DonutChart.extend({ defaultProps: { accessibilityLayer: false, pieProps: { rootTabIndex: -1 } } }),
    BarChart: BarChart.extend({ defaultProps: { accessibilityLayer: false } }),
    // Every notification's and dialog's × gets a name for screen readers (axe: button-name); a
    // dialog may name its own ("Close without queuing").
    Notification: Notification.extend({ defaultProps: { closeButtonProps: { 'aria-label': 'Close notification' } } }),
    Modal: Modal.extend({ defaultProps: { closeButtonProps: { 'aria-label': 'Close' } } }),
  },
});

/**
 * WCAG AA text contrast (axe-core checks every screen in test/browser): Mantine's default
 * secondary ("dimmed") text, and the text of light badges and alerts, are a little too pale.
 */
const cssVariablesResolver: CSSVariablesResolver = (t) => ({
  variables: {},
  light: {
    '--mantine-color-dimmed': 'var(--mantine-color-gray-7)',
    ...Object.fromEntries(Object.keys(t.colors).map((c) => [`--mantine-color-${c}-light-color`, darken(t.colors[c]![9], 0.3)])),
  },
  dark: { '--mantine-color-dimmed': 'var(--mantine-color-dark-1)' },
});

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 15_000,
      refetchOnWindowFocus: false,
      // A refusal or a missing object does not get better by asking again.
      retry: (n, e) => !(e instanceof ApiError && e.status >= 400 && e.status < 500) && n < 2,
    },
  },
});

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <MantineProvider theme={theme} defaultColorScheme="auto" getStyleNonce={() => nonce} cssVariablesResolver={cssVariablesResolver}>
      <Notifications position="top-right" />
      <QueryClientProvider client={queryClient}>{selfService ? <RecoverPage /> : <App />}</QueryClientProvider>
    </MantineProvider>
  </StrictMode>,
);

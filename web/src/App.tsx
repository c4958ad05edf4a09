import { useEffect, useState, type ReactNode } from 'react';
import { Redirect, Route, Switch, useLocation, Link } from 'wouter';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ActionIcon, AppShell, Badge, Burger, Button, Group, NavLink, Text, Tooltip, useComputedColorScheme, useMantineColorScheme } from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import {
  IconAlertTriangle,
  IconBell,
  IconBuilding,
  IconChecklist,
  IconDeviceLaptop,
  IconFileImport,
  IconHome,
  IconKey,
  IconListDetails,
  IconLock,
  IconLogout,
  IconMoon,
  IconReportAnalytics,
  IconSettings,
  IconShieldLock,
  IconSun,
} from '@tabler/icons-react';
import { api, ApiError, csrf, setUnauthenticatedHandler, type Answer } from './api';
import { SessionProvider, useSession, ROLE_LABEL } from './session';
import { ErrorState, Loading } from './ui';
import { LoginPage, SetupPage } from './pages/SignIn';
import { MfaEnrolPage } from './pages/Account';
import { FindKeyPage } from './pages/FindKey';
import { DevicePage } from './pages/Device';
import { ClientsPage, ClientPage } from './pages/Clients';
import { AgentsPage } from './pages/Agents';
import { AuditPage } from './pages/Audit';
import { SettingsPage } from './pages/Settings';
import { HomePage } from './pages/Home';
import { ImportsPage } from './pages/Imports';
import { CompliancePage } from './pages/Compliance';
import { ReportsPage } from './pages/Reports';
import { NotificationsPage } from './pages/Notifications';
import { FindingsPage } from './pages/Findings';
import { AcceptInvitationPage, SecondFactorNag, invitationTokenInHash } from './pages/Invitations';
import { RequestPage, RequestsPage, rememberRequestLink, useAfterSignIn } from './pages/Requests';

export type SessionState = Answer<'/api/v1/setup', 'get'>;
export const SIGNED_OUT: SessionState = { needed: false, signedIn: false };

export function App() {
  // An invitation link (/#/invitation/<token>): the invitee's page, whoever is signed in here.
  const [inviteToken, setInviteToken] = useState(invitationTokenInHash);
  useEffect(() => {
    const onHash = () => setInviteToken((t) => invitationTokenInHash() ?? t);
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  const qc = useQueryClient();
  const [, navigate] = useLocation();
  // Public: whether a first owner is still needed and whether this browser has a session.
  const state = useQuery({ queryKey: ['session-state'], queryFn: () => api.get('/api/v1/setup', { quiet401: true }), staleTime: Infinity });
  const me = useQuery({
    queryKey: ['me'],
    queryFn: async () => {
      try {
        return await api.get('/api/v1/me', { quiet401: true });
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) return null;
        throw e;
      }
    },
    enabled: state.data?.signedIn === true,
    staleTime: 60_000,
  });

  useEffect(() => {
    // Any 401 later on (session ended, idle timeout): back to sign-in, nothing cached kept.
    setUnauthenticatedHandler(() => {
      csrf.clear();
      qc.clear();
      qc.setQueryData(['session-state'], SIGNED_OUT);
      qc.setQueryData(['me'], null);
      navigate('/login');
    });
  }, [qc, navigate]);

  if (inviteToken) return <AcceptInvitationPage token={inviteToken} onDone={() => setInviteToken(null)} />;
  if (me.data) {
    if (me.data.mfaEnrolmentRequired) return <MfaEnrolPage me={me.data} />;
    return (
      <SessionProvider me={me.data}>
        <Shell />
      </SessionProvider>
    );
  }
  if (state.isPending || (state.data?.signedIn && me.isPending && me.fetchStatus !== 'idle')) return <Loading label="Opening Keywarden…" />;
  if (state.isError) return <ErrorState error={state.error} retry={() => void state.refetch()} title="Keywarden cannot be reached" />;
  if (me.isError) return <ErrorState error={me.error} retry={() => void me.refetch()} title="Keywarden cannot be reached" />;
  return <SignedOut needed={state.data?.needed ?? false} />;
}

function SignedOut({ needed }: { needed: boolean }) {
  return (
    <Switch>
      <Route path="/setup">{needed ? <SetupPage /> : <Redirect to="/login" />}</Route>
      <Route path="/login">{needed ? <Redirect to="/setup" /> : <LoginPage />}</Route>
      {/* A reveal request's link from a notification: opened once the person has signed in. */}
      <Route path="/requests/:id">
        {(p) => {
          rememberRequestLink(`/requests/${p.id}`);
          return <Redirect to={needed ? '/setup' : '/login'} />;
        }}
      </Route>
      <Route>
        <Redirect to={needed ? '/setup' : '/login'} />
      </Route>
    </Switch>
  );
}

function ColorSchemeToggle() {
  const { setColorScheme } = useMantineColorScheme();
  const computed = useComputedColorScheme('light', { getInitialValueInEffect: false });
  return (
    <Tooltip label={computed === 'dark' ? 'Light theme' : 'Dark theme'}>
      <ActionIcon variant="default" size="lg" aria-label="Toggle color scheme" onClick={() => setColorScheme(computed === 'dark' ? 'light' : 'dark')}>
        {computed === 'dark' ? <IconSun size={18} /> : <IconMoon size={18} />}
      </ActionIcon>
    </Tooltip>
  );
}

function Shell() {
  const { me, role, can } = useSession();
  const [opened, { toggle, close }] = useDisclosure(false);
  const [location, navigate] = useLocation();
  const qc = useQueryClient();
  const findKey = can('key:list') || can('key:lookup');
  // Whoever may not see devices (helpdesk) finds keys by key ID only: no browsing lists of clients.
  const clients = can('client:read') && can('device:read');
  const audit = can('audit:read');
  // Each screen is shown to whoever the server would let do its work (GET /me's permissions).
  const home = clients;
  const findings = clients;
  const imports = can('key:import');
  const compliance = clients;
  const reports = clients;
  // Notification settings: whoever manages a client or reads its audit trail (the server's mayRead).
  const notifications = can('client:manage') || can('audit:read');
  // Two-person reveal: whoever may reveal may ask and approve.
  const requests = can('key:reveal');
  useAfterSignIn();

  useEffect(() => close(), [location, close]);

  useEffect(() => {
    // `/` jumps to the search box from anywhere (unless typing in a field).
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
      const t = e.target as HTMLElement | null;
      if (t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))) return;
      if (!findKey) return;
      e.preventDefault();
      if (location !== '/') navigate('/');
      setTimeout(() => document.getElementById('find-key')?.focus(), 0);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [location, navigate, findKey]);

  const signOut = async () => {
    try {
      await api.post('/api/v1/auth/logout');
    } catch {
      // Signed out already (expired): the result is the same.
    }
    csrf.clear();
    qc.clear();
    qc.setQueryData(['session-state'], SIGNED_OUT);
    qc.setQueryData(['me'], null);
    navigate('/login');
  };

  const link = (href: string, label: string, icon: ReactNode, active: boolean) => (
    <NavLink component={Link} href={href} label={label} leftSection={icon} active={active} aria-current={active ? 'page' : undefined} />
  );

  return (
    <AppShell header={{ height: 56 }} navbar={{ width: 220, breakpoint: 'sm', collapsed: { mobile: !opened } }} padding="md">
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label={opened ? 'Close navigation' : 'Open navigation'} />
            <Group gap={6} wrap="nowrap">
              <IconShieldLock size={22} aria-hidden />
              <Text fw={700}>Keywarden</Text>
            </Group>
          </Group>
          <Group gap="xs" wrap="nowrap">
            <Group gap={6} visibleFrom="xs" wrap="nowrap">
              <Text size="sm" c="dimmed" truncate maw={220}>
                {me.user?.email ?? me.actor.name}
              </Text>
              <Badge variant="light" size="sm">
                {ROLE_LABEL[role]}
              </Badge>
            </Group>
            <ColorSchemeToggle />
            <Button variant="default" size="sm" leftSection={<IconLogout size={16} />} onClick={() => void signOut()}>
              Sign out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Main">
        {home && link('/home', 'Home', <IconHome size={18} />, location === '/home')}
        {findKey && link('/', 'Find a key', <IconKey size={18} />, location === '/')}
        {clients && link('/clients', 'Clients', <IconBuilding size={18} />, location.startsWith('/clients') || location.startsWith('/devices'))}
        {findings && link('/findings', 'Findings', <IconAlertTriangle size={18} />, location.startsWith('/findings'))}
        {compliance && link('/compliance', 'Compliance', <IconChecklist size={18} />, location.startsWith('/compliance'))}
        {reports && link('/reports', 'Reports', <IconReportAnalytics size={18} />, location.startsWith('/reports'))}
        {imports && link('/imports', 'Import', <IconFileImport size={18} />, location.startsWith('/imports'))}
        {clients && link('/agents', 'Agents', <IconDeviceLaptop size={18} />, location.startsWith('/agents'))}
        {requests && link('/requests', 'Requests', <IconLock size={18} />, location.startsWith('/requests'))}
        {notifications && link('/notifications', 'Notifications', <IconBell size={18} />, location.startsWith('/notifications'))}
        {audit && link('/audit', 'Audit log', <IconListDetails size={18} />, location.startsWith('/audit'))}
        {link('/settings', 'Settings', <IconSettings size={18} />, location.startsWith('/settings'))}
      </AppShell.Navbar>
      <AppShell.Main>
        <SecondFactorNag missing={me.secondFactorMissing} />
        <Switch>
          <Route path="/">{findKey ? <FindKeyPage /> : <Redirect to="/clients" />}</Route>
          <Route path="/login">
            <Redirect to="/" />
          </Route>
          <Route path="/setup">
            <Redirect to="/" />
          </Route>
          <Route path="/devices/:id">{(p) => (!can('device:read') ? <Redirect to="/" /> : <DevicePage id={p.id} />)}</Route>
          <Route path="/clients">{clients ? <ClientsPage /> : <Redirect to="/" />}</Route>
          <Route path="/clients/:id">{(p) => (clients ? <ClientPage id={p.id} /> : <Redirect to="/" />)}</Route>
          <Route path="/agents">{clients ? <AgentsPage /> : <Redirect to="/" />}</Route>
          <Route path="/home">{home ? <HomePage /> : <Redirect to="/" />}</Route>
          <Route path="/findings">{findings ? <FindingsPage /> : <Redirect to="/" />}</Route>
          <Route path="/compliance">{compliance ? <CompliancePage /> : <Redirect to="/" />}</Route>
          <Route path="/reports">{reports ? <ReportsPage /> : <Redirect to="/" />}</Route>
          <Route path="/imports">{imports ? <ImportsPage /> : <Redirect to="/" />}</Route>
          <Route path="/notifications">{notifications ? <NotificationsPage /> : <Redirect to="/" />}</Route>
          <Route path="/audit">{audit ? <AuditPage /> : <Redirect to="/" />}</Route>
          <Route path="/requests">{requests ? <RequestsPage /> : <Redirect to="/" />}</Route>
          <Route path="/requests/:id">{(p) => (requests ? <RequestPage id={p.id} /> : <Redirect to="/" />)}</Route>
          <Route path="/settings">
            <SettingsPage />
          </Route>
          <Route path="/settings/:tab">{(p) => <SettingsPage tab={p.tab} />}</Route>
          <Route>
            <NotFoundPage />
          </Route>
        </Switch>
      </AppShell.Main>
    </AppShell>
  );
}

function NotFoundPage() {
  return <ErrorState title="There is no such page" error={new Error('Check the address, or pick a page in the navigation.')} />;
}

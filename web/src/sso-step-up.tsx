/**
 * Step-up at the sign-in provider, for a session opened through single sign-on whose provider's
 * multi-factor sign-in counts for Keywarden's step-up (src/modules/sso). The button is a plain
 * navigation: the provider asks the person to sign in again (prompt=login) and sends them back to
 * this page with a fresh proof; what they were doing is started again from there.
 */
import { Button, Group } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { IconShieldLock } from '@tabler/icons-react';
import { api, ssoStepUpUrl } from './api';

export function SsoStepUpButton({ label }: { label?: string }) {
  const mine = useQuery({ queryKey: ['me', 'sso'], queryFn: () => api.get('/api/v1/me/sso') });
  const provider = mine.data?.stepUpProvider;
  if (!provider) return null;
  return (
    <Group>
      <Button
        component="a"
        variant="light"
        leftSection={<IconShieldLock size={16} aria-hidden />}
        href={ssoStepUpUrl(window.location.pathname + window.location.search)}
      >
        {label ?? `Confirm at ${provider.name} (step-up)`}
      </Button>
    </Group>
  );
}

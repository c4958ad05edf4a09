import { useState, type ReactNode } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { TextInput } from '@mantine/core';
import { api, ApiError } from '../api';
import { useSession } from '../session';
import { PasskeyStepUpButton } from '../passkeys';
import { SsoStepUpButton } from '../sso-step-up';

/**
 * The two proofs a destructive or break-glass action asks for in the console: a fresh second factor
 * (step-up) when the server would refuse without one, and the client's name typed exactly as shown.
 * The server remains the authority: it checks both again (src/modules/authz/authz.ts
 * requireFreshSecondFactor answers `step_up_required`; lifecycle checks the typed name).
 */
export function useStepUp(purpose: string) {
  const qc = useQueryClient();
  const { me } = useSession();
  const [code, setCode] = useState('');
  const [needCode, setNeedCode] = useState(false);
  // A passkey confirmation just made here (the /me answer catches up a moment later).
  const [passkeyDone, setPasskeyDone] = useState(false);
  const mfa = me.user?.mfaEnabled ?? false;
  const totp = me.user?.totpEnabled ?? false;
  const fresh = !!me.stepUpValidUntil && Date.parse(me.stepUpValidUntil) > Date.now() + 30_000;
  const showCode = mfa && (needCode || !fresh) && !passkeyDone;

  /** Proves the second factor first when it is needed; throws the server's answer otherwise. */
  const prove = async () => {
    if (!showCode) return;
    if (!totp) throw new ApiError(400, 'step_up_required', 'Confirm it is you first: use your passkey.');
    const typed = code.replace(/\s+/g, '');
    if (!typed) throw new ApiError(400, 'step_up_required', 'Enter a current code from your authenticator app.');
    await api.post('/api/v1/auth/step-up', { body: { code: typed } });
    setCode('');
    setNeedCode(false);
    await qc.invalidateQueries({ queryKey: ['me'] });
  };

  /** True when the server asked for a fresh step-up: the code field appears. */
  const caught = (e: unknown) => {
    if (e instanceof ApiError && e.code === 'step_up_required') {
      setNeedCode(true);
      setPasskeyDone(false);
      return true;
    }
    return false;
  };

  const passkey = (
    <>
      <SsoStepUpButton />
      <PasskeyStepUpButton
        onDone={() => {
          setPasskeyDone(true);
          setNeedCode(false);
        }}
      />
    </>
  );
  const field: ReactNode = !showCode ? null : !totp ? (
    passkey
  ) : (
    <>
      <TextInput
        label="Authentication code"
        description={`A current code from your authenticator app: confirm it is you before you ${purpose}.`}
        value={code}
        onChange={(e) => setCode(e.currentTarget.value)}
        autoComplete="one-time-code"
        inputMode="numeric"
        required
        maxLength={20}
        classNames={{ input: 'kw-mono' }}
      />
      {passkey}
    </>
  );

  return { mfa, showCode, field, prove, caught };
}

/** "Type the client's name to confirm": matches when the name is typed exactly (spaces around aside). */
export function useTypedName(name: string) {
  const [typed, setTyped] = useState('');
  const matches = typed.trim() === name;
  const field = (
    <TextInput
      label="Type the client's name to confirm"
      description={
        <>
          Type <strong>{name}</strong> exactly as shown.
        </>
      }
      value={typed}
      onChange={(e) => setTyped(e.currentTarget.value)}
      autoComplete="off"
      spellCheck={false}
      required
      maxLength={300}
      error={typed.trim() && !matches && !name.startsWith(typed.trim()) ? 'This is not the client’s name.' : undefined}
    />
  );
  return { typed: typed.trim(), matches, field };
}
